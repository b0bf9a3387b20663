"""Mounts the page routes of each domain."""

from fastapi import FastAPI

from kokyaku.web import account, admin, customers


def include(app: FastAPI) -> None:
    app.include_router(account.router)
    app.include_router(customers.router)
    app.include_router(admin.router)
