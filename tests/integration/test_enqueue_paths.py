"""The fast enqueue paths (one statement per job; prepared multi-row inserts in bulk) keep every
promise of the slow one: deduplication, key checks, follow-ups, the given values exactly."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select

from syncbridge.clock import FakeClock
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.db.schema import jobs
from syncbridge.errors import InvalidBatchRequest, InvalidInput
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


def test_bulk_jobs_come_back_as_stored_and_run(store: Store, clock: FakeClock) -> None:
    """The optimistic bulk paths (``COPY`` on PostgreSQL, a plain ``executemany`` with ids
    chosen under the write lock on SQLite) write every column as the column types do: what
    ``enqueue_many`` returns is what the store reads back, and the claim finds it due. Ids stay
    unique after rows were deleted from the top of the table."""
    [gone] = store.enqueue_many([req("gone")])
    _delete(store, gone.job.id)
    batch = [
        req(entity, {"v": entity, "n": [1, 2.5, None, True]}, correlation_id=f"c-{n}")
        for n, entity in enumerate(HOSTILE)
    ]
    batch.append(req("keyed", {"k": 1}, idempotency_key="bulk-key-1"))
    batch.append(req("later", run_at=clock.now() + timedelta(hours=2, microseconds=3)))
    results = store.enqueue_many(batch)
    assert [r.deduplicated for r in results] == [False] * len(batch)
    assert len({r.job.id for r in results}) == len(batch)
    for result in results:
        assert stored(store, result.job.id) == result.job
    claimed = store.claim("w1", ["noop"], 100, lease_seconds=60)
    assert {job.entity_id for job in claimed} == set(HOSTILE) | {"keyed"}


def test_a_bulk_batch_that_meets_an_active_job_writes_each_row_once(store: Store) -> None:
    """A conflict fails the optimistic bulk statement as a whole; the batch then goes row by
    row, and every other row is written exactly once."""
    active = store.enqueue(req("busy", {"v": "first"})).job
    results = store.enqueue_many([req("free-1"), req("busy", {"v": "second"}), req("free-2")])
    assert [r.deduplicated for r in results] == [False, True, False]
    assert results[1].job.id == active.id
    entities = sorted(job.entity_id for job in store.list_jobs(limit=100))
    assert entities == ["busy", "free-1", "free-2"]


def _delete(store: Store, job_id: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(jobs.delete().where(jobs.c.id == job_id))


def test_concurrent_bulk_loads_from_separate_engines_lose_and_double_nothing(
    store: Store, database_url: str
) -> None:
    """Two processes' worth of bulk loads at once (separate engines, so separate connections
    and, on SQLite, separate write transactions): the optimistic paths choose ids under a lock
    (the write lock on SQLite, the sequence on PostgreSQL), and entities that both name end up
    with exactly one job."""
    shared = [req(f"shared-{n}") for n in range(300)]
    batches = [[req(f"only-{side}-{n}") for n in range(700)] + shared for side in ("left", "right")]
    engines = [make_engine(database_url) for _ in batches]
    try:
        stores = [Store(engine, FakeClock()) for engine in engines]
        with ThreadPoolExecutor(len(stores)) as pool:
            results = list(pool.map(Store.enqueue_many, stores, batches))
    finally:
        for engine in engines:
            engine.dispose()
    fresh = [r.job.id for batch in results for r in batch if not r.deduplicated]
    assert len(fresh) == len(set(fresh)) == 2 * 700 + 300
    entities = [job.entity_id for job in store.list_jobs(limit=5000)]
    assert len(entities) == len(set(entities)) == 2 * 700 + 300


UNSENDABLE_CORRELATION_IDS = ["café-123", "注文-42", "req-42 ", " req-42", "tab\tin", "c" * 201, ""]


@pytest.mark.parametrize("correlation_id", UNSENDABLE_CORRELATION_IDS)
def test_the_python_api_refuses_correlation_ids_that_cannot_be_sent_as_a_header(
    store: Store, correlation_id: str
) -> None:
    """Every upstream call carries the job's correlation id as ``X-Correlation-ID``: one that
    cannot be a header would make each call fail before it left the process, until the job was
    dead. One by one and in bulk (nothing of the batch is stored), the store refuses it."""
    with pytest.raises(InvalidInput, match="correlation id"):
        store.enqueue(req("e-corr", correlation_id=correlation_id))
    batch = [req("e-ok"), req("e-corr", correlation_id=correlation_id), req("e-ok-2")]
    with pytest.raises(InvalidBatchRequest, match="request 2: correlation id") as refused:
        store.enqueue_many(batch)
    assert refused.value.index == 1
    assert not any(store.counts_by_state().values())  # nothing stored


def test_sendable_correlation_ids_are_kept_as_given(store: Store) -> None:
    for n, correlation_id in enumerate(["req-42", "a~b", "c" * 200, "x!#$%&'*+.^_`|~:/=?@[]"]):
        job = store.enqueue(req(f"e-{n}", correlation_id=correlation_id)).job
        assert stored(store, job.id).correlation_id == correlation_id
