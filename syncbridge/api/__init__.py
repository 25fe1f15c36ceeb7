"""The HTTP API, the admin UI and the operational endpoints (``syncbridge serve``).

::

    app.py         create_app: the factory, error mapping
    middleware.py  correlation id, bearer check, security headers, request log and metrics
    auth.py        tokens, login codes, sessions, CSRF
    routes.py      /api/...      (JSON; typed models in schemas.py)
    ops.py         /health, /ready, /metrics, /docs
    ui.py          /ui/...       pages (GET)
    ui_actions.py  /ui/...       forms (POST)
    activity.py    the dashboard's charts
    views.py       templates and their filters
"""

from __future__ import annotations

from fastapi import FastAPI

from syncbridge.api.app import create_app


def create_app_from_environment() -> FastAPI:
    """For ``uvicorn --factory``: settings from the environment and config file; needs
    ``SYNCBRIDGE_ADMIN_TOKEN`` (``syncbridge serve`` can generate one instead)."""
    from syncbridge.cli.app import App

    return create_app(App())


__all__ = ["create_app", "create_app_from_environment"]
