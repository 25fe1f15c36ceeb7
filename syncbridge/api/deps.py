"""What every route needs: the app's context (services, token, sessions, templates) and the
paging that the API and the UI share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from syncbridge.api.auth import Session, Sessions, session_of
from syncbridge.api.throttle import FailedLogins
from syncbridge.models import Job
from syncbridge.services import Services


@dataclass(frozen=True)
class ApiContext:
    services: Callable[[], Services]  # built lazily: raises DatabaseNotReady until it can be
    admin_token: str
    sessions: Sessions
    templates: Jinja2Templates
    failed_logins: FailedLogins


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.syncbridge
    return ctx


def services(request: Request) -> Services:
    return context(request).services()


def client_address(request: Request) -> str | None:
    """The peer's address, as the ASGI server reports it (what :class:`FailedLogins` keys on)."""
    return request.client.host if request.client else None


def correlation_id(request: Request) -> str:
    value: str = request.state.correlation_id
    return value


def current_session(request: Request) -> Session | None:
    return session_of(request, context(request).sessions)


Ctx = Annotated[ApiContext, Depends(context)]
Svc = Annotated[Services, Depends(services)]
CorrelationId = Annotated[str, Depends(correlation_id)]
CurrentSession = Annotated[Session | None, Depends(current_session)]


def page_of(
    services: Services,
    *,
    state: str | None = None,
    job_type: str | None = None,
    entity_id: str | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> tuple[list[Job], int | None]:
    """One page, newest first, and the cursor of the next page (None on the last one)."""
    found = services.store.list_jobs(
        state=state, job_type=job_type, entity_id=entity_id, limit=limit + 1, before_id=cursor
    )
    page = found[:limit]
    return page, page[-1].id if len(found) > limit and page else None
