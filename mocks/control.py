"""State every mock server has, and the control routes tests and operators use on it."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from mocks.faults import Behaviour, FaultBudget, FaultInjector, FaultSettings
from mocks.http import BodyError, ObservedMiddleware, read_json, validate


class ServerState:
    """Faults and request counts of one server; subclasses add that server's records."""

    name = "server"

    def __init__(
        self, settings: FaultSettings | None = None, budget: FaultBudget | None = None
    ) -> None:
        self.faults = FaultInjector(settings or FaultSettings(), budget)
        self._stats_lock = threading.Lock()
        self._requests: Counter[int] = Counter()

    def record(self, status: int) -> None:
        with self._stats_lock:
            self._requests[status] += 1

    def effects(self) -> dict[str, int]:
        """Applied effects per idempotency key; a read-only server has none."""
        return {}

    def stats(self) -> dict[str, dict[str, int]]:
        with self._stats_lock:
            requests = {str(status): n for status, n in sorted(self._requests.items())}
        return {"requests": requests, "effects": self.effects()}

    def reset(self) -> None:
        self.faults.reset()
        with self._stats_lock:
            self._requests.clear()


class FaultsPatch(BaseModel):
    """Body of POST /_faults: every key optional; `entities` is merged into the current map."""

    model_config = ConfigDict(extra="forbid")

    fault_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    lost_response_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    max_faults_per_entity: int | None = Field(default=None, ge=0)
    latency_ms: int | None = Field(default=None, ge=0, le=600_000)
    seed: int | None = None
    slow_seconds: float | None = Field(default=None, ge=0.0, le=3600.0)
    retry_after_seconds: float | None = Field(default=None, ge=0.0, le=3600.0)
    entities: dict[str, Behaviour] | None = None

    def apply(self, current: FaultSettings) -> FaultSettings:
        changes = self.model_dump(exclude_none=True, exclude={"entities"})
        if self.entities is not None:
            changes["entities"] = {**current.entities, **self.entities}
        return dataclasses.replace(current, **changes)


def build_app(state: ServerState, *, title: str) -> FastAPI:
    """A FastAPI app with the shared middleware and control routes for `state`."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        ObservedMiddleware,
        server=state.name,
        latency_ms=lambda: state.faults.settings.latency_ms,
        record=state.record,
    )

    @app.exception_handler(BodyError)
    async def _body_error(request: Request, exc: BodyError) -> JSONResponse:
        return exc.response()

    @app.get("/_stats")
    async def get_stats() -> JSONResponse:
        return JSONResponse(state.stats())

    @app.get("/_faults")
    async def get_faults() -> JSONResponse:
        return JSONResponse(state.faults.settings.as_json())

    @app.post("/_faults")
    async def post_faults(request: Request) -> JSONResponse:
        patch = validate(FaultsPatch, await read_json(request))
        state.faults.update(patch.apply(state.faults.settings))
        return JSONResponse(state.faults.settings.as_json())

    @app.post("/_reset")
    async def post_reset() -> JSONResponse:
        state.reset()
        return JSONResponse({"reset": True})

    return app
