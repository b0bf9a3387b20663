"""The ASGI application for uvicorn: `kokyaku serve` or `uvicorn kokyaku.asgi:app`."""

from kokyaku.app import create_app

app = create_app()
