"""What the admin UI changes (``POST /ui/...``): log in and out, enqueue, cancel, retry,
replay, and an operator's answer for an unknown effect. Each action needs a session *and* its
CSRF token (see ``auth.py``), and calls the same service function as the CLI and the API;
afterwards the browser is redirected to a page (PRG)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from syncbridge.api.auth import SESSION_COOKIE, SESSION_TTL, Session, same_origin, token_matches
from syncbridge.api.deps import CorrelationId, Ctx, Svc, client_address, context
from syncbridge.api.schemas import MAX_ID
from syncbridge.api.throttle import Verdict
from syncbridge.api.views import render
from syncbridge.errors import InvalidInput, Refused
from syncbridge.models import Job

router = APIRouter(prefix="/ui", include_in_schema=False)
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
MAX_SELECTED = 500


async def checked_form(request: Request) -> FormData:
    """The form of a logged-in, same-origin request whose CSRF token matches its session."""
    session = context(request).sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise HTTPException(401, "log in first (open the login link `syncbridge serve` printed)")
    if not same_origin(request):
        raise HTTPException(403, "cross-origin request refused")
    form = await request.form()
    token = form.get("csrf_token")
    if not isinstance(token, str) or not token_matches(token, session.csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def _logged_in(request: Request, session: Session) -> RedirectResponse:
    response = RedirectResponse("/ui/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _throttled(request: Request, verdict: Verdict) -> Response:
    error = f"Too many failed logins from this address: try again in {verdict.retry_after} s."
    response = render(request, "login.html", 429, error=error)
    response.headers["Retry-After"] = str(verdict.retry_after)
    return response


@router.get("/login")
def login_page(request: Request, ctx: Ctx, token: str = "") -> Response:
    """``?token=`` is a one-time login code (as printed by ``serve``); it is spent here. A
    blank one is not a guess: the login form is shown."""
    token = token.strip()
    if not token:
        return render(request, "login.html", error=None)
    session = None

    def redeem() -> bool:
        nonlocal session
        session = ctx.sessions.redeem(token)
        return session is not None

    verdict = ctx.failed_logins.check(client_address(request), redeem)
    if verdict.throttled:
        return _throttled(request, verdict)
    if session is None:
        error = "This login link was already used or is not valid. Paste the admin token below."
        return render(request, "login.html", 401, error=error)
    return _logged_in(request, session)


@router.post("/login")
async def login(request: Request, ctx: Ctx) -> Response:
    """The admin token typed into the login form. An empty form is not a guess."""
    if not same_origin(request):
        raise HTTPException(403, "cross-origin request refused")
    form = await request.form()
    token = form.get("token")
    given = token.strip() if isinstance(token, str) else ""
    verdict = (
        ctx.failed_logins.check(
            client_address(request), lambda: token_matches(given, ctx.admin_token)
        )
        if given
        else Verdict(ok=False)
    )
    if verdict.throttled:
        return _throttled(request, verdict)
    if not verdict.ok:
        return render(request, "login.html", 401, error="Wrong admin token.")
    return _logged_in(request, ctx.sessions.start())


@router.post("/logout")
def logout(request: Request, ctx: Ctx, form: CheckedForm) -> Response:
    ctx.sessions.end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


@router.post("/jobs")
def enqueue(services: Svc, form: CheckedForm, correlation: CorrelationId) -> Response:
    payload: Any = {}
    if _text(form, "payload"):
        try:
            payload = json.loads(_text(form, "payload"))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InvalidInput(f"payload is not valid JSON: {exc}") from None
    result = services.enqueue(
        _text(form, "job_type"),
        _text(form, "entity_id"),
        payload,
        idempotency_key=_text(form, "idempotency_key") or None,
        correlation_id=correlation,
    )
    done = "deduplicated" if result.deduplicated else "enqueue"
    return RedirectResponse(f"/ui/jobs/{result.job.id}?done={done}", status_code=303)


@router.post("/jobs/{job_id}/effect")
def answer_effect(job_id: JobId, services: Svc, form: CheckedForm) -> Response:
    """The operator's answer for a job whose effect is unknown (``reconcile --answer``)."""
    services.answer_effect(job_id, _text(form, "effect_status"))
    return RedirectResponse(f"/ui/jobs/{job_id}?done=effect", status_code=303)


@router.post("/jobs/{job_id}/{action}")
def act(
    job_id: JobId,
    action: Literal["cancel", "retry", "replay"],
    services: Svc,
    form: CheckedForm,
) -> Response:
    if action == "cancel":
        services.cancel(job_id)
    elif action == "retry":
        services.retry(job_id)
    else:
        new = services.replay(job_id)
        return RedirectResponse(f"/ui/jobs/{job_id}?done=replay&new={new.id}", status_code=303)
    return RedirectResponse(f"/ui/jobs/{job_id}?done={action}", status_code=303)


@router.post("/dlq/replay")
def replay_selected(request: Request, services: Svc, form: CheckedForm) -> Response:
    """Replay each selected job; one refusal does not stop the others."""
    raw = form.getlist("job_id")
    if not raw:
        raise InvalidInput("select at least one job to replay")
    if len(raw) > MAX_SELECTED:
        raise InvalidInput(f"select at most {MAX_SELECTED} jobs at once")
    # ASCII digits only: int() also takes full-width digits and "1_0", which no form sends.
    texts = [str(value) for value in raw]
    if not all(text.isascii() and text.isdigit() for text in texts):
        raise InvalidInput("job ids must be numbers")
    ids = list(dict.fromkeys(int(text) for text in texts))
    if not all(1 <= job_id <= MAX_ID for job_id in ids):
        raise InvalidInput("job ids must be positive 64-bit numbers")
    results: list[tuple[int, Job | None, str | None]] = []
    for job_id in ids:
        try:
            results.append((job_id, services.replay(job_id), None))
        except Refused as exc:
            results.append((job_id, None, str(exc)))
    return render(request, "replayed.html", results=results)
