"""Helpers shared by the mock tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from starlette.types import ASGIApp

from mocks.faults import BILLING_DEFAULT_ENTITIES, CRM_DEFAULT_ENTITIES, FaultSettings

T = TypeVar("T")

# Short enough to keep the suite fast, long enough to tell "slow" from "answered at once".
SLOW_SECONDS = 0.3


def crm_settings(**changes: Any) -> FaultSettings:
    changes.setdefault("slow_seconds", SLOW_SECONDS)
    return FaultSettings(entities=dict(CRM_DEFAULT_ENTITIES), **changes)


def billing_settings(**changes: Any) -> FaultSettings:
    changes.setdefault("slow_seconds", SLOW_SECONDS)
    return FaultSettings(entities=dict(BILLING_DEFAULT_ENTITIES), **changes)


SETUP_KEY = "setup-customer"  # the key the `customer` fixture's PUT uses


def invoice_effects(billing: InProcess) -> dict[str, int]:
    """Billing's applied effects per key, without the `customer` fixture's set-up."""
    effects: dict[str, int] = billing.get("/_stats").json()["effects"]
    return {key: n for key, n in effects.items() if key != SETUP_KEY}


def invoice_body(
    external_id: str = "i_2001", customer_id: str = "c_1001", **extra: Any
) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "customer_id": customer_id,
        "amount_cents": 1250,
        "currency": "EUR",
        "description": "test",
        **extra,
    }


# Ids a hostile or careless client may send; each must get a clean 404, never a 500.
HOSTILE_IDS = [
    "<img src=x onerror=alert(1)>",
    "'; DROP TABLE customers; --",
    "c_1001\u0000",
    "c_\u0661\u0660\u0660\u0661",  # Arabic-Indic digits: int() would read them as 1001
    "\uff43_\uff11\uff10\uff10\uff11",  # fullwidth look-alike of c_1001
    "c_1001 ",
    "💥",
    "c_" + "9" * 5000,
    "%2e%2e%2f",
    "../../etc/passwd",
]


def quoted(record_id: str) -> str:
    """The id as one path segment, percent-encoded as any real client would send it."""
    return quote(record_id, safe="")


class InProcess:
    """Drive an ASGI app from a plain test: one event loop for the test, closed at its end.

    httpx's ASGITransport is async-only (and Starlette's TestClient warns about httpx), so the
    sync methods run the async client on a private `asyncio.Runner`; `run()` takes any
    coroutine, e.g. an `asyncio.gather` of many concurrent requests.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._runner = asyncio.Runner()
        # raise_app_exceptions (the default) turns any 500 into a test failure.
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://mock.test"
        )

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def close(self) -> None:
        self.run(self.client.aclose())
        self._runner.close()
