"""Rendering for the admin UI: the Jinja2 environment (autoescape on for every template), the
filters that format times and durations, and which actions a job's state allows."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import jinja2
from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import Response

from syncbridge.api.auth import session_of
from syncbridge.services import SURROGATE
from syncbridge.states import JobState

# The moves CONTRACT.md allows an operator, by the state a job is in.
ACTIONS: dict[str, tuple[str, ...]] = {
    JobState.PENDING: ("cancel",),
    JobState.RUNNING: ("cancel",),
    JobState.FAILED: ("retry", "replay"),
    JobState.DEAD: ("replay",),
}


def legal_actions(state: str) -> tuple[str, ...]:
    return ACTIONS.get(state, ())


def as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def when(value: Any) -> str:
    moment = as_datetime(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def iso(value: Any) -> str:
    moment = as_datetime(value)
    return moment.isoformat() if moment else ""


def duration(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.1f} ms"
    if ms < 120_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 60_000:.1f} min"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def printable_in_utf8(value: Any) -> Any:
    """Jinja's ``finalize``, applied to every value a template prints: a lone surrogate, which a
    payload may hold (INV_013: the Python API stores it as given) but UTF-8 cannot encode,
    becomes its escape (``\\ud800``) instead of failing the whole page."""
    if isinstance(value, str) and SURROGATE.search(value):
        return SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", value)
    return value


def _ui_context(request: Request) -> dict[str, Any]:
    session = session_of(request, request.app.state.syncbridge.sessions)
    return {
        "session": session,
        "csrf_token": session.csrf_token if session else "",
        "path": request.url.path,
    }


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("syncbridge", "templates"),
        autoescape=True,  # every template, whatever its name: values are always escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=printable_in_utf8,
    )
    env.filters.update(when=when, iso=iso, duration=duration, pretty_json=pretty_json)
    env.globals.update(legal_actions=legal_actions, states=[str(s) for s in JobState])
    return Jinja2Templates(env=env, context_processors=[_ui_context])


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    templates: Jinja2Templates = request.app.state.syncbridge.templates
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["cache-control"] = "no-store"
    return response
