"""The handler threads: every submitted attempt comes back exactly once, whatever its handler
did (including raising ``BaseException``), and shutdown drops what never started."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from syncbridge.handler_pool import AttemptKey, HandlerPool
from syncbridge.jobtypes import JobContext, JobType
from syncbridge.states import AttemptOutcome

WAIT = 10.0


def ctx(job_id: int) -> JobContext:
    return JobContext(
        job_id=job_id,
        job_type="t",
        entity_id=f"e{job_id}",
        payload={},
        attempt=1,
        correlation_id="c",
        lineage_id=job_id,
        worker_id="w",
        deadline=datetime(2030, 1, 1, tzinfo=UTC),
        log=None,
    )


def drain(pool: HandlerPool, wake: threading.Event, count: int) -> dict[AttemptKey, object]:
    reports: dict[AttemptKey, object] = {}
    while len(reports) < count:
        assert wake.wait(WAIT), f"only {len(reports)} of {count} reports came back"
        wake.clear()
        for key, report in pool.finished():
            assert key not in reports, "a report came back twice"
            reports[key] = report
    return reports


def test_every_attempt_comes_back_once_whatever_the_handler_did() -> None:
    wake = threading.Event()
    pool = HandlerPool(3, wake.set)

    def handler(c: JobContext) -> None:
        if c.job_id % 3 == 1:
            raise ValueError("retryable")
        if c.job_id % 3 == 2:
            raise SystemExit("a handler that calls sys.exit must not kill the pool thread")

    job_type = JobType("t", handler)
    for job_id in range(60):
        pool.submit((job_id, 1), job_type, ctx(job_id))
    reports = drain(pool, wake, 60)
    outcomes = {key[0]: report.outcome for key, report in reports.items()}  # type: ignore[attr-defined]
    assert [outcomes[n] for n in range(3)] == [
        AttemptOutcome.SUCCEEDED,
        AttemptOutcome.ERROR,
        AttemptOutcome.ERROR,
    ]
    assert len(outcomes) == 60
    pool.shutdown()


def test_shutdown_drops_attempts_not_started() -> None:
    wake = threading.Event()
    release = threading.Event()
    started = threading.Event()
    pool = HandlerPool(1, wake.set)

    def blocking(c: JobContext) -> None:
        started.set()
        release.wait(WAIT)

    job_type = JobType("t", blocking)
    for job_id in range(5):
        pool.submit((job_id, 1), job_type, ctx(job_id))
    assert started.wait(WAIT)
    dropped = pool.shutdown()
    assert sorted(dropped) == [(n, 1) for n in range(1, 5)]
    release.set()
    assert drain(pool, wake, 1).keys() == {(0, 1)}


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least one"):
        HandlerPool(0, lambda: None)
