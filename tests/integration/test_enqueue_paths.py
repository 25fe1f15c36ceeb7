"""The fast enqueue paths (one statement per job; prepared multi-row inserts in bulk) keep every
promise of the slow one: deduplication, key checks, follow-ups, the given values exactly."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select

from syncbridge.clock import FakeClock
from syncbridge.db.queries import Store
from syncbridge.db.schema import jobs
from syncbridge.errors import InvalidInput
from syncbridge.models import EnqueueRequest, Job
from syncbridge.states import JobState

HOSTILE = [
    "quote'd",
    'double"quote',
    "back\\slash",
    "tab\there",
    "new\nline",
    "percent%s{}",
    "ünïcødé-✓",
    "semi;colon -- DROP TABLE jobs",
    "\\N",
]


def req(entity: str, payload: dict[str, object] | None = None, **kw: object) -> EnqueueRequest:
    return EnqueueRequest("noop", entity, payload or {}, 3, **kw)  # type: ignore[arg-type]


def stored(store: Store, job_id: int) -> Job:
    return store.get_job(job_id)


def test_a_new_job_comes_back_as_stored(store: Store, clock: FakeClock) -> None:
    result = store.enqueue(req("e1", {"n": 1}, correlation_id="corr-1", timeout_seconds=9))
    assert not result.deduplicated
    assert result.job == stored(store, result.job.id)
    assert result.job.created_at == result.job.next_run_at == clock.now()
    assert result.job.lineage_id == result.job.id  # its own lineage
    with store.engine.connect() as conn:
        raw = conn.execute(select(jobs.c.lineage_id).where(jobs.c.id == result.job.id))
        assert raw.scalar_one() is None  # stored as "no replay"


def test_run_at_in_the_future_is_kept(store: Store, clock: FakeClock) -> None:
    later = clock.now() + timedelta(hours=3)
    job = store.enqueue(req("later", run_at=later)).job
    assert job.next_run_at == later == stored(store, job.id).next_run_at
    assert store.claim("w", ["noop"], 10, 60) == []


@pytest.mark.parametrize("entity", HOSTILE)
def test_hostile_entity_ids_round_trip(store: Store, entity: str) -> None:
    single = store.enqueue(req(entity, {"v": entity})).job
    assert stored(store, single.id).entity_id == entity
    [bulk] = store.enqueue_many([req(entity + "-bulk", {"v": entity})])
    assert stored(store, bulk.job.id).entity_id == entity + "-bulk"
    assert stored(store, bulk.job.id).payload == {"v": entity}


def test_the_same_entity_twice_in_one_bulk_call_keeps_the_first(store: Store) -> None:
    first, second = store.enqueue_many([req("dup", {"v": 1}), req("dup", {"v": 2})])
    assert not first.deduplicated and first.job.payload == {"v": 1}
    assert second.deduplicated and second.job.id == first.job.id
    assert stored(store, first.job.id).payload == {"v": 1}


def test_keys_in_bulk_and_single(store: Store) -> None:
    keyed = store.enqueue(req("k", {"a": 1}, idempotency_key="key-1")).job
    again = store.enqueue(req("k", {"a": 1}, idempotency_key="key-1"))
    assert again.deduplicated and again.job.id == keyed.id
    [in_bulk] = store.enqueue_many([req("k", {"a": 1}, idempotency_key="key-1")])
    assert in_bulk.deduplicated and in_bulk.job.id == keyed.id
    before = store.list_jobs(limit=100)
    with pytest.raises(InvalidInput, match="different parameters"):
        store.enqueue(req("k", {"a": 2}, idempotency_key="key-1"))
    assert store.list_jobs(limit=100) == before


def test_an_enqueue_for_a_running_entity_marks_a_follow_up(store: Store) -> None:
    store.enqueue(req("busy"))
    [running] = store.claim("w", ["noop"], 1, 60)
    result = store.enqueue(req("busy", {"newer": True}))
    assert result.deduplicated and result.follow_up_marked and result.job.id == running.id
    marked = stored(store, running.id)
    assert marked.follow_up and marked.follow_up_payload == {"newer": True}


def test_fifty_concurrent_enqueues_of_one_entity_make_one_job(store: Store) -> None:
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda n: store.enqueue(req("hot", {"n": n})), range(50)))
    assert len({r.job.id for r in results}) == 1
    assert sum(not r.deduplicated for r in results) == 1
    assert store.counts_by_state()["pending"] == 1
    [job] = store.list_jobs(limit=10)
    assert job.state is JobState.PENDING


def test_a_large_bulk_load_refreshes_the_planner_statistics(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncbridge import services as services_module
    from syncbridge.config import Settings
    from syncbridge.plugins import load_registry

    refreshed: list[bool] = []
    real = store.refresh_statistics
    monkeypatch.setattr(store, "refresh_statistics", lambda: refreshed.append(True) or real())
    monkeypatch.setattr(services_module, "REFRESH_STATISTICS_AFTER", 3)
    services = services_module.Services(store, load_registry(["noop"]), Settings())
    services.enqueue_many([req("a"), req("b")])
    assert refreshed == []  # small loads leave it to autovacuum
    services.enqueue_many([req("c"), req("d"), req("e"), req("a")])
    assert refreshed == [True]
