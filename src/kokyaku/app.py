"""create_app(settings): the API, the pages, static files and one error handler for both."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import plotly
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from kokyaku import __version__
from kokyaku.analytics.api import router as analytics_api
from kokyaku.auth.api import router as users_api
from kokyaku.commerce.api import router as commerce_api
from kokyaku.config import Settings, get_settings
from kokyaku.customers.api import router as customers_api
from kokyaku.customers.merge_api import router as merges_api
from kokyaku.db import Database
from kokyaku.errors import KokyakuError, NotAuthenticated
from kokyaku.feedback.api import router as feedback_api
from kokyaku.imports.api import router as exports_api
from kokyaku.jobs.api import router as jobs_api
from kokyaku.jobs.worker import lifespan as jobs_lifespan
from kokyaku.segments.api import router as segments_api
from kokyaku.timeline.api import router as timeline_api
from kokyaku.web import pages
from kokyaku.web.render import render_error, validation_problems

log = logging.getLogger("kokyaku")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # What exists at start-up (modules, routes, templates, mappers, schemas) lives as long as the process.
    # Frozen, it is left out of the collector's full passes, each of which walked it all (~280,000 objects):
    # 140 ms a pass, 12% of the server's time while it ingested events (bench/RESULTS_timeline.md).
    gc.freeze()
    async with jobs_lifespan(app):  # the in-process worker (settings.run_worker_in_process)
        yield


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Kokyaku",
        version=__version__,
        description="Customer platform API. Authenticate with `Authorization: Bearer <token>`.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.db = db or Database(
        settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms, background_checkpoints=True
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie="kokyaku_session",
        max_age=settings.session_max_age,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.include_router(customers_api)
    app.include_router(merges_api)
    app.include_router(users_api)
    app.include_router(jobs_api)
    app.include_router(timeline_api)
    app.include_router(commerce_api)
    app.include_router(segments_api)
    app.include_router(exports_api)
    app.include_router(feedback_api)
    app.include_router(analytics_api)
    pages.include(app)
    app.mount("/static/vendor", StaticFiles(packages=[("js_lib_htmx", "static")]), name="vendor")
    plotly_js = Path(plotly.__file__).parent / "package_data"
    app.mount("/static/plotly", StaticFiles(directory=plotly_js), name="plotly")
    app.mount("/static", StaticFiles(packages=[("kokyaku.web", "static")]), name="static")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.exception_handler(KokyakuError)
    async def kokyaku_error(request: Request, exc: KokyakuError) -> Response:
        response: Response
        if _is_api(request):
            response = JSONResponse({"error": exc.code, "detail": exc.detail()}, status_code=exc.status)
        elif isinstance(exc, NotAuthenticated):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        else:
            response = render_error(request, exc.status, exc.message, exc.params)
        if exc.status == 503:  # busy for the moment (DatabaseBusy): the same request may be sent again
            response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = validation_problems(exc.errors())
        if _is_api(request):
            detail = [{"field": f, "message": m.format(**p) if p else m} for f, m, p in problems]
            return JSONResponse({"error": "validation_error", "detail": detail}, status_code=422)
        return render_error(request, 400, "The request is not valid.", {})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        if _is_api(request) or request.url.path.startswith("/static"):
            return JSONResponse({"error": code, "detail": exc.detail}, status_code=exc.status_code)
        return render_error(request, exc.status_code, "This page does not exist.", {})

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def out_of_range(request: Request, exc: Exception) -> Response:
        # A number the database cannot hold (an id beyond 64 bits): the input is wrong, not the server.
        if _is_api(request):
            detail = "A number in the request is out of range."
            return JSONResponse({"error": "out_of_range", "detail": detail}, status_code=422)
        return render_error(request, 400, "A number in the request is out of range.", {})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Log the type and place only: messages may hold customer data.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
        if _is_api(request):
            return JSONResponse({"error": "internal", "detail": "Internal error."}, status_code=500)
        return render_error(request, 500, "Something went wrong.", {})

    return app
