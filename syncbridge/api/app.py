"""The app factory: ``create_app(services)`` builds the API, the admin UI and the operational
endpoints around one lazily built :class:`Services` (the CLI's), so every action has one
implementation.

::

    uvicorn --factory 'syncbridge.api:create_app_from_environment'   # or `syncbridge serve`
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from syncbridge import __version__
from syncbridge.api import ops, routes, ui, ui_actions
from syncbridge.api.auth import Sessions
from syncbridge.api.deps import ApiContext
from syncbridge.api.middleware import ApiMiddleware
from syncbridge.api.responses import Utf8SafeJSONResponse
from syncbridge.api.throttle import FailedLogins
from syncbridge.api.views import make_templates, render
from syncbridge.config import Settings
from syncbridge.db.engine import driver_message
from syncbridge.errors import DatabaseNotReady, Refused
from syncbridge.logs import get_logger
from syncbridge.services import Services

DESCRIPTION = """The HTTP face of syncbridge: the same operations as the CLI.

Every mutating call needs `Authorization: Bearer <SYNCBRIDGE_ADMIN_TOKEN>`. Every response
carries `X-Correlation-ID` (the one sent, when it is a sane token, else a new one); an enqueue
uses it as the job's correlation id. Times are RFC 3339 in UTC; lists are
`{"items": [...], "next_cursor": ...}`.
"""


class ServicesSource(Protocol):
    """Anything that builds settings and services lazily, such as the CLI's ``App``."""

    @property
    def settings(self) -> Settings: ...

    @property
    def services(self) -> Services: ...


def create_app(
    source: Services | ServicesSource | Callable[[], Services],
    *,
    admin_token: str | None = None,
    sessions: Sessions | None = None,
    failed_logins: FailedLogins | None = None,
) -> FastAPI:
    """``source``: ready services, an ``App`` (built on first request, so a database that is not
    ready yet gives 503 until it is), or a factory. ``admin_token`` defaults to the settings'."""
    factory, configured = _resolve(source)
    token = admin_token or configured
    if not token:
        raise ValueError("no admin token: set SYNCBRIDGE_ADMIN_TOKEN or pass admin_token")
    app = FastAPI(
        title="syncbridge",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # our own /docs: Swagger UI needs a CDN and inline script
        redoc_url=None,
    )
    throttle = failed_logins or FailedLogins()
    app.state.syncbridge = ApiContext(
        factory, token, sessions or Sessions(), make_templates(), throttle
    )
    routers = [module.router for module in (routes, ops, ui, ui_actions)]
    own_routes = [route for router in routers for route in router.routes]
    app.add_middleware(ApiMiddleware, admin_token=token, failed_logins=throttle, routes=own_routes)
    _install_error_handlers(app)
    for router in routers:
        app.include_router(router)
    app.mount("/static", StaticFiles(packages=[("syncbridge", "static")]), name="static")
    return app


def _resolve(
    source: Services | ServicesSource | Callable[[], Services],
) -> tuple[Callable[[], Services], str | None]:
    if isinstance(source, Services):
        return (lambda: source), source.settings.admin_token
    if callable(source):
        return source, None
    lazy = source
    return (lambda: lazy.services), lazy.settings.admin_token


def _is_ui(request: Request) -> bool:
    return request.url.path.startswith("/ui")


def _error(request: Request, status: int, detail: str) -> Response:
    if _is_ui(request):
        return render(request, "message.html", status, title=f"Error {status}", message=detail)
    return Utf8SafeJSONResponse({"detail": detail}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return _error(request, exc.status_code, str(exc))

    @app.exception_handler(DatabaseNotReady)
    async def not_ready(request: Request, exc: DatabaseNotReady) -> Response:
        return _error(request, 503, str(exc))

    @app.exception_handler(OperationalError)
    async def unavailable(request: Request, exc: OperationalError) -> Response:
        get_logger().warning("database_unavailable", error=driver_message(exc)[:300])
        return _error(request, 503, "database unavailable; try again shortly")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": str(e.get("type"))}
            for e in exc.errors()
        ]
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        if _is_ui(request):
            return _error(request, 422, f"invalid request: {where}")
        return Utf8SafeJSONResponse(
            {"detail": f"invalid request: {where}", "errors": errors}, status_code=422
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI's "error parsing the body": an invalid body
            return _error(request, 422, f"invalid request: {exc.detail}")
        if _is_ui(request) and exc.status_code >= 400:
            return _error(request, exc.status_code, str(exc.detail))
        return await http_exception_handler(request, exc)
