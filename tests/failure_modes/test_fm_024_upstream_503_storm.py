"""FM_024: a 503 storm at the upstreams; retries must stay bounded and spread out.

Real mock servers at a 50% fault rate (at most 3 injected faults per job, so a healthy job
succeeds within its 4 attempts), plus customers that are down for good (CRM 503 every time).
Every call the engine makes is counted per endpoint and per job by a counting transport. Unsafe
variant: handlers that retry each upstream call themselves on top of the engine's retries,
which multiplies the load on an upstream that is already failing. Prevention: handlers make one
call per step and raise; the engine owns retries (``transitions.decide`` budget of
max_retries + 1 attempts, ``RetryPolicy`` backoff with equal jitter; lock-step: FM_012).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import httpx
import pytest
from syncbridge_customer import sync_customer
from syncbridge_invoice import sync_invoice

from syncbridge.db.queries import Store
from syncbridge.errors import UpstreamTimeout, UpstreamUnavailable
from syncbridge.jobtypes import JobContext, JobType
from syncbridge.plugins import Registry
from syncbridge.retry import RetryPolicy
from syncbridge.states import JobState
from tests.failure_modes.support import request, violations
from tests.failure_modes.test_fm_02_kit import (
    Mocks,
    all_finished,
    mocks_for,
    real_registry,
    run_workers,
    settings_for,
    worker,
)
from tests.helpers import registry_with

INVOICES = [f"i_{n}" for n in range(2301, 2331)]  # 30 healthy invoice jobs
DOWN = [f"c_{n}" for n in range(1901, 1911)]  # 10 customer jobs whose CRM record is down
MAX_RETRIES, BASE, TRIES = 3, 0.1, 5
PER_ATTEMPT = {  # calls per attempt, by job type and endpoint
    "invoice": [
        "crm GET /invoices/{id}",
        "crm GET /customers/{id}",
        "billing PUT /customers/{id}",
        "billing POST /invoices",
    ],
    "customer": ["crm GET /customers/{id}", "billing PUT /customers/{id}"],
}


class Counting(httpx.HTTPTransport):
    """Counts every request by (endpoint, correlation id) before sending it."""

    def __init__(self, upstream: str, calls: Counter[tuple[str, str]]) -> None:
        super().__init__()
        self.upstream, self.calls, self.lock = upstream, calls, threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = re.sub(r"^/(customers|invoices)/[^/]+$", r"/\1/{id}", request.url.path)
        endpoint = f"{self.upstream} {request.method} {path}"
        with self.lock:
            self.calls[(endpoint, request.headers.get("X-Correlation-ID", ""))] += 1
        return super().handle_request(request)


@dataclass(frozen=True)
class Recorded(RetryPolicy):
    """The engine's policy, unchanged; it notes the delays it hands out."""

    delays: list[tuple[int, float]] = field(default_factory=list, compare=False)

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        value = super().delay(retry_number, retry_after)
        self.delays.append((retry_number, value))
        return value


class InlineRetry:
    """Unsafe: retries every upstream call itself, TRIES times, before giving up."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(*args: Any, **kw: Any) -> Any:
            for n in range(TRIES):
                try:
                    return method(*args, **kw)
                except (UpstreamUnavailable, UpstreamTimeout):
                    if n == TRIES - 1:
                        raise
            raise AssertionError("unreachable")

        return call


def inline_retry(job_type: JobType) -> JobType:
    def handler(ctx: JobContext) -> Any:
        real = ctx.upstream
        ctx.upstream = lambda name: InlineRetry(real(name))  # type: ignore[method-assign]
        return job_type.handler(ctx)

    return JobType(job_type.name, handler)


@pytest.fixture
def mocks(request: pytest.FixtureRequest) -> Mocks:
    mocks = mocks_for(request)
    for which in ("crm", "billing"):
        mocks.set_faults(which, fault_rate=0.5, max_faults_per_entity=3, seed=24)
    mocks.set_faults("crm", entities=dict.fromkeys(DOWN, "down"))
    return mocks


def storm(
    store: Store, mocks: Mocks, registry: Registry, policy: Recorded | None = None
) -> tuple[Counter[str], dict[int, Any]]:
    """Run every job to its end. Returns calls per endpoint and, per job, its calls per
    endpoint."""
    requests = [request(i, job_type="invoice", max_retries=MAX_RETRIES) for i in INVOICES]
    requests += [request(c, job_type="customer", max_retries=MAX_RETRIES) for c in DOWN]
    jobs = [store.enqueue(r).job for r in requests]
    calls: Counter[tuple[str, str]] = Counter()
    transports = {name: Counting(name, calls) for name in ("crm", "billing")}
    settings = settings_for(mocks, job_backoff_seconds_base=BASE)
    runner = worker(store, registry, settings, concurrency=8, transports=transports)
    runner.policy = policy or runner.policy
    run_workers([runner], all_finished(store), timeout=60)
    by_endpoint: Counter[str] = Counter()
    for (endpoint, _), n in calls.items():
        by_endpoint[endpoint] += n
    per_job = {
        job.id: Counter({e: n for (e, cid), n in calls.items() if cid == job.correlation_id})
        for job in jobs
    }
    return by_endpoint, per_job


UNSAFE_HANDLERS = [("invoice", sync_invoice), ("customer", sync_customer)]


def bound(endpoint: str, job_types: list[str]) -> int:
    return sum((MAX_RETRIES + 1) * PER_ATTEMPT[t].count(endpoint) for t in job_types)


def test_repro_retrying_inside_the_handler_multiplies_the_calls(
    live_store: Store, mocks: Mocks
) -> None:
    registry = registry_with(*(inline_retry(JobType(n, h)) for n, h in UNSAFE_HANDLERS))
    by_endpoint, per_job = storm(live_store, mocks, registry)
    down = [j for j in live_store.list_jobs(limit=100) if j.entity_id in DOWN]
    assert {j.state for j in down} == {JobState.DEAD}
    # Each down customer was asked TRIES times per attempt, not once.
    endpoint = "crm GET /customers/{id}"
    assert {per_job[j.id][endpoint] for j in down} == {(MAX_RETRIES + 1) * TRIES}
    assert by_endpoint[endpoint] > bound(endpoint, ["invoice"] * 30 + ["customer"] * 10)


def test_prevented_retries_are_bounded_and_spread(live_store: Store, mocks: Mocks) -> None:
    policy = Recorded(BASE)
    by_endpoint, per_job = storm(live_store, mocks, real_registry(), policy)
    jobs = live_store.list_jobs(limit=100)
    types = [j.job_type for j in jobs]
    assert mocks.requests("crm").get("503", 0) + mocks.requests("billing").get("503", 0) > 60
    for endpoint, n in by_endpoint.items():
        assert n <= bound(endpoint, types), endpoint
    for job in jobs:  # and per job: one call per endpoint per attempt, at most
        assert all(n <= bound(e, [job.job_type]) for e, n in per_job[job.id].items())
        assert sum(per_job[job.id].values()) >= job.attempt  # every attempt made its call
    healthy = [j for j in jobs if j.job_type == "invoice"]
    assert {j.state for j in healthy} == {JobState.SUCCEEDED}
    assert sum(j.attempt > 1 for j in healthy) >= 10  # the storm hit the healthy jobs too
    down = [j for j in jobs if j.entity_id in DOWN]
    assert {(j.state, j.attempt) for j in down} == {(JobState.DEAD, MAX_RETRIES + 1)}
    assert {per_job[j.id]["crm GET /customers/{id}"] for j in down} == {MAX_RETRIES + 1}
    # Spread: each first retry got its own delay (equal jitter: half fixed, half random) ...
    first = [delay for number, delay in policy.delays if number == 1]
    assert len(first) >= 20 and len(set(first)) == len(first)
    assert min(first) >= BASE / 2 and max(first) <= BASE and max(first) - min(first) >= BASE / 4
    # ... and no retry started before its delay was up.
    for job in jobs:
        attempts = live_store.attempts_of(job.id)
        for earlier, later in pairwise(attempts):
            assert earlier.finished_at is not None
            assert (later.started_at - earlier.finished_at).total_seconds() >= BASE / 2 - 0.001
    # Billing applied each key once, one invoice per CRM invoice.
    mocks.set_faults("billing", fault_rate=0.0)
    assert set(mocks.effects().values()) == {1}
    assert all(len(mocks.invoices(i)) == 1 for i in INVOICES)
    assert violations(live_store) == {}
