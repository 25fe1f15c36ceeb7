"""INV_015: an idempotency key answers with one job, always, on both backends. A key given with
an enqueue that met the entity's active job is recorded for that job, so giving it again after
that job finished returns the same job instead of making a new one (found by the hostile-input
review: 49 of 50 keys given at once were recorded nowhere)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from syncbridge.clock import FakeClock
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.db.schema import idempotency_keys
from syncbridge.errors import InvalidInput
from syncbridge.invariants import run_checks
from syncbridge.models import Completion, EnqueueRequest, EnqueueResult
from syncbridge.states import AttemptOutcome, JobState
from tests.conftest import truncate

RACERS = 50


def _request(entity: str, key: str | None = None, **payload: Any) -> EnqueueRequest:
    return EnqueueRequest("noop", entity, payload, 3, idempotency_key=key)


def _race(database_url: str, calls: list[Callable[[Store], Any]]) -> list[Any]:
    """Each call on its own engine (own connection), all released at once; an exception is
    returned as the call's result."""
    engines = [make_engine(database_url) for _ in calls]
    barrier = threading.Barrier(len(calls))

    def one(index: int) -> Any:
        store = Store(engines[index])
        barrier.wait()
        try:
            return calls[index](store)
        except InvalidInput as exc:
            return exc

    try:
        with ThreadPoolExecutor(len(calls)) as pool:
            return list(pool.map(one, range(len(calls))))
    finally:
        for engine in engines:
            engine.dispose()


def _finish(store: Store, job_id: int) -> None:
    [job] = store.claim("w1", ["noop"], 1, 60)
    assert job.id == job_id
    store.complete([Completion(job.id, job.attempt, "w1", AttemptOutcome.SUCCEEDED)])


def _recorded(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(idempotency_keys.c.key, idempotency_keys.c.job_id)).all()
    return {key: job_id for key, job_id in rows}


def test_fifty_keys_given_at_once_to_an_active_job_all_answer_with_it(
    engine: Engine, database_url: str
) -> None:
    truncate(engine)
    store = Store(engine, FakeClock())
    active = store.enqueue(_request("e1")).job
    keys = [f"k{n}" for n in range(RACERS)]
    results: list[EnqueueResult] = _race(
        database_url, [lambda s, k=key: s.enqueue(_request("e1", k)) for key in keys]
    )
    assert {r.job.id for r in results} == {active.id} and all(r.deduplicated for r in results)
    assert _recorded(engine) == dict.fromkeys(keys, active.id)
    _finish(store, active.id)
    # Given again after that job finished: the same job, not a new one.
    again = store.enqueue(_request("e1", "k7"))
    assert again.deduplicated and again.job.id == active.id
    assert again.job.state is JobState.SUCCEEDED
    with pytest.raises(InvalidInput, match="'k7' already belongs to job"):
        store.enqueue(_request("e1", "k7", other="payload"))
    # Without a key the entity gets a new job, as before.
    fresh = store.enqueue(_request("e1"))
    assert not fresh.deduplicated and fresh.job.id != active.id
    assert [check.code for check in run_checks(store) if not check.ok] == []


def test_a_key_given_to_a_running_job_marks_its_follow_up_and_answers_with_it(
    store: Store,
) -> None:
    running_id = store.enqueue(_request("e1")).job.id
    [running] = store.claim("w1", ["noop"], 1, 60)
    result = store.enqueue(_request("e1", "k-running"))
    assert result.follow_up_marked and result.job.id == running_id
    store.complete([Completion(running.id, running.attempt, "w1", AttemptOutcome.SUCCEEDED)])
    again = store.enqueue(_request("e1", "k-running"))
    assert again.deduplicated and again.job.id == running_id


@pytest.mark.parametrize("round_", range(3))
def test_one_key_raced_for_two_entities_answers_with_one_job(
    engine: Engine, database_url: str, round_: int
) -> None:
    # Entity A has an active job (the key would be recorded for it); entity B has none (the
    # key would create B's job). Whichever is first, the other is refused: the key's
    # parameters name another entity.
    truncate(engine)
    store = Store(engine, FakeClock())
    a_job = store.enqueue(_request("A")).job
    calls: list[Callable[[Store], Any]] = []
    for n in range(10):
        entity = "A" if (n + round_) % 2 else "B"
        calls.append(lambda s, e=entity: s.enqueue(_request(e, "shared")))
    results = _race(database_url, calls)
    answered = {r.job.id for r in results if isinstance(r, EnqueueResult)}
    refused = [r for r in results if isinstance(r, InvalidInput)]
    assert len(answered) == 1 and refused, results
    (owner,) = answered
    assert _recorded(engine) == {"shared": owner}
    if owner != a_job.id:  # B's job, made by the key
        assert store.get_job(owner).entity_id == "B"
    assert [check.code for check in run_checks(store) if not check.ok] == []


def test_enqueue_many_records_keys_that_meet_active_jobs(store: Store) -> None:
    active = store.enqueue(_request("e1")).job
    results = store.enqueue_many([_request("e1", "bulk-1"), _request("e2", "bulk-2")])
    assert results[0].deduplicated and results[0].job.id == active.id
    assert not results[1].deduplicated
    assert _recorded(store.engine) == {"bulk-1": active.id, "bulk-2": results[1].job.id}


def test_prune_keeps_a_job_that_a_given_key_answers_with(store: Store, clock: FakeClock) -> None:
    active = store.enqueue(_request("e1")).job
    store.enqueue(_request("e1", "kept-by-key"))  # recorded for the active job
    unkeyed = store.enqueue(_request("e2")).job
    for job_id in sorted([active.id, unkeyed.id]):
        _finish(store, job_id)
    clock.advance(timedelta(days=8).total_seconds())
    assert store.prune(clock.now() - timedelta(days=7)) == 1  # only the unkeyed one
    assert store.get_job(active.id).state is JobState.SUCCEEDED
    again = store.enqueue(_request("e1", "kept-by-key"))
    assert again.deduplicated and again.job.id == active.id


def test_enqueue_many_records_the_keys_of_the_jobs_it_makes_in_bulk(store: Store) -> None:
    # The bulk path (COPY on PostgreSQL, one executemany on SQLite) writes the key records
    # in the transaction that writes the jobs.
    results = store.enqueue_many([_request(f"b{n}", f"bulk-{n}") for n in range(200)])
    assert not any(r.deduplicated for r in results)
    assert _recorded(store.engine) == {f"bulk-{n}": r.job.id for n, r in enumerate(results)}
    again = store.enqueue_many([_request("b7", "bulk-7"), _request("b8", "bulk-8")])
    assert [r.job.id for r in again] == [results[7].job.id, results[8].job.id]
    assert all(r.deduplicated for r in again)


def test_a_bulk_key_given_before_to_another_job_answers_with_that_job(store: Store) -> None:
    # The key was recorded for e1's earlier job by an enqueue that met it; that job finished,
    # so a bulk insert of a new e1 job would succeed, but its key record cannot: the chunk
    # falls back, and the key answers with the job it answered with before.
    first = store.enqueue(_request("e1")).job
    store.enqueue(_request("e1", "given-before"))
    _finish(store, first.id)
    results = store.enqueue_many([_request("e1", "given-before"), _request("e2", "fresh")])
    assert results[0].deduplicated and results[0].job.id == first.id
    assert not results[1].deduplicated
    assert _recorded(store.engine) == {"given-before": first.id, "fresh": results[1].job.id}
    assert [check.code for check in run_checks(store) if not check.ok] == []
