"""FM_013: the database goes away under a running worker (restart, failover, network blip).

Unsafe variant: a worker that lets a database error escape its loop dies with it: the outcome
it had in hand is never written and its jobs sit `running` until someone rescues them. The real
worker keeps the outcome in memory, logs `database_lost` once, and writes it (fenced) when the
database answers again. The real-process drill with a restarted PostgreSQL cluster is
tests/integration/test_database_restart.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import structlog
from sqlalchemy.exc import OperationalError

from syncbridge.db.queries import Store
from syncbridge.models import Completion, CompletionResult
from syncbridge.states import JobState
from syncbridge.worker import Worker
from tests.failure_modes.support import request, violations
from tests.helpers import fast_settings, registry_with


class FlakyStore(Store):
    """The real store, except that the next ``outages`` completion flushes fail as if the
    database had gone away."""

    outages = 0

    def complete(self, completions: Sequence[Completion], *args: Any) -> list[CompletionResult]:
        if self.outages > 0:
            self.outages -= 1
            raise OperationalError("UPDATE jobs", {}, Exception("server closed the connection"))
        return super().complete(completions, *args)


class UnsafeWorker(Worker):
    """No outage handling: a database error ends the loop."""

    def _db(self, operation: Callable[[], Any]) -> Any:
        return operation()


def _flaky(live_store: Store, outages: int) -> FlakyStore:
    store = FlakyStore(live_store.engine)
    store.outages = outages
    return store


def test_repro_worker_without_outage_handling_dies_and_strands_its_job(
    live_store: Store,
) -> None:
    store = _flaky(live_store, outages=1)
    job = store.enqueue(request("e1")).job
    worker = UnsafeWorker(store, registry_with(), fast_settings(), concurrency=1, burst=True)
    with pytest.raises(OperationalError):
        worker.run()
    stranded = store.get_job(job.id)
    assert stranded.state is JobState.RUNNING  # the success it computed is gone
    assert [a.outcome for a in store.attempts_of(job.id)] == ["running"]


def test_prevented_worker_keeps_outcomes_and_writes_them_when_the_database_returns(
    live_store: Store,
) -> None:
    store = _flaky(live_store, outages=3)
    ids = [store.enqueue(request(f"e{n}")).job.id for n in range(5)]
    worker = Worker(store, registry_with(), fast_settings(), concurrency=2, burst=True)
    with structlog.testing.capture_logs() as logs:
        worker.run()
    assert all(store.get_job(i).state is JobState.SUCCEEDED for i in ids)
    assert all([a.outcome for a in store.attempts_of(i)] == ["succeeded"] for i in ids)
    events = [line["event"] for line in logs]
    assert events.count("database_lost") == 1  # logged once, not once per retry
    assert events.count("database_reconnected") == 1
    assert violations(store) == {}
