"""Mounts the page routes of each domain."""

from fastapi import FastAPI

from kokyaku.web import (
    account,
    admin,
    analytics,
    commerce,
    customers,
    duplicates,
    feedback,
    imports,
    jobs,
    segments,
    timeline,
)


def include(app: FastAPI) -> None:
    app.include_router(account.router)
    app.include_router(customers.router)
    app.include_router(commerce.router)
    app.include_router(duplicates.router)
    app.include_router(admin.router)
    app.include_router(jobs.router)
    app.include_router(timeline.router)
    app.include_router(segments.router)
    app.include_router(imports.router)
    app.include_router(feedback.router)
    app.include_router(analytics.router)
