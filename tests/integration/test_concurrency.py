"""Races through separate connections: the database, not the caller, keeps the promises."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine

from syncbridge.clock import FakeClock
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.models import Completion, EnqueueRequest, EnqueueResult
from syncbridge.states import AttemptOutcome, JobState
from tests.conftest import truncate

RACERS = 50


def _race(database_url: str, action: str) -> list[EnqueueResult]:
    """RACERS threads, each on its own engine (own connection), released at once."""
    engines = [make_engine(database_url) for _ in range(RACERS)]
    barrier = threading.Barrier(RACERS)

    def one(index: int) -> EnqueueResult:
        store = Store(engines[index])
        key = "same-key" if action == "key" else None
        barrier.wait()
        return store.enqueue(EnqueueRequest("noop", "entity-1", {"v": 1}, 3, idempotency_key=key))

    try:
        with ThreadPoolExecutor(RACERS) as pool:
            return list(pool.map(one, range(RACERS)))
    finally:
        for engine in engines:
            engine.dispose()


def test_fifty_concurrent_enqueues_make_one_active_job(engine: Engine, database_url: str) -> None:
    truncate(engine)
    results = _race(database_url, "entity")
    assert len({r.job.id for r in results}) == 1
    assert sum(not r.deduplicated for r in results) == 1
    assert Store(engine).counts_by_state()["pending"] == 1


def test_fifty_concurrent_enqueues_with_one_key(engine: Engine, database_url: str) -> None:
    truncate(engine)
    results = _race(database_url, "key")
    assert len({r.job.id for r in results}) == 1
    assert sum(not r.deduplicated for r in results) == 1


def test_enqueues_during_a_run_make_exactly_one_follow_up(
    engine: Engine, database_url: str
) -> None:
    truncate(engine)
    store = Store(engine, FakeClock())
    store.enqueue(EnqueueRequest("noop", "entity-1", {}, 3))
    [running] = store.claim("w1", ["noop"], 1, 60)
    results = _race(database_url, "entity")
    assert {r.job.id for r in results} == {running.id}
    assert all(r.follow_up_marked for r in results)
    [done] = store.complete(
        [Completion(running.id, running.attempt, "w1", AttemptOutcome.SUCCEEDED)]
    )
    assert done.follow_up_job_id is not None
    pending = store.list_jobs(state="pending")
    assert [j.id for j in pending] == [done.follow_up_job_id]
    assert store.get_job(running.id).state is JobState.SUCCEEDED
