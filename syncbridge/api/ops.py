"""Operational endpoints: liveness, readiness, Prometheus, and the API reference page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from syncbridge.api.deps import Ctx, Svc
from syncbridge.api.responses import Utf8SafeJSONResponse
from syncbridge.api.schemas import ErrorOut, Health
from syncbridge.api.views import render
from syncbridge.db.engine import check_ready
from syncbridge.errors import DatabaseNotReady
from syncbridge.metrics import render_prometheus

router = APIRouter(tags=["operations"], default_response_class=Utf8SafeJSONResponse)
METHODS = ("get", "post", "put", "patch", "delete")


@router.get(
    "/health",
    response_model_exclude_none=True,
    summary="The process is up (says nothing about the database)",
)
def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model_exclude_none=True,
    summary="The database is reachable and migrated",
    responses={503: {"model": Health, "description": "Not ready; `detail` says why."}},
)
def ready(ctx: Ctx, response: Response) -> Health:
    try:
        check_ready(ctx.services().store.engine)
    except DatabaseNotReady as exc:
        response.status_code = 503
        return Health(status="not_ready", detail=str(exc))
    return Health(status="ready")


@router.get(
    "/metrics",
    summary="Prometheus metrics of this process and the queue",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        503: {"model": ErrorOut, "description": "The database is not ready."},
    },
)
def prometheus(services: Svc) -> Response:
    body, content_type = render_prometheus(services.store)
    return Response(body, media_type=content_type)


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=303)


@router.get("/docs", include_in_schema=False)
def docs(request: Request) -> Response:
    """The OpenAPI document as a server-rendered page (no CDN, no script)."""
    schema = request.app.openapi()
    return render(request, "api_docs.html", operations=operations(schema), info=schema["info"])


def operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            found.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "tag": (op.get("tags") or [""])[0],
                    "secured": bool(op.get("security")),
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "description": p.get("description", ""),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "body": body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1],
                    "responses": sorted(op.get("responses", {})),
                }
            )
    return found
