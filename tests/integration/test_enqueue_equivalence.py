"""``enqueue_many`` gives what ``enqueue`` one by one would, in any mix of new entities,
duplicates within the batch, entities already pending or running, keys and hostile text; and the
fast PostgreSQL paths (a held connection, ``COPY`` straight into ``jobs``) neither leak
connections nor lose a job when their connection dies."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, StatementError

from syncbridge.clock import FakeClock
from syncbridge.db.driver import HELD_SLOTS, HeldConnection
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.models import Completion, EnqueueRequest, EnqueueResult
from syncbridge.states import AttemptOutcome, JobState
from tests.conftest import truncate

ENTITIES = ["a", "b", "c", "quote'd\\N", "tab\tnew\nline"]

requests_strategy = st.lists(
    st.builds(
        lambda entity, version, keyed, later: EnqueueRequest(
            "noop",
            entity,
            {"v": version},
            3,
            # A key names one set of parameters, as a well-behaved client's does.
            idempotency_key=f"key-{entity}-{version}" if keyed else None,
            run_at=datetime(2031, 1, 1, tzinfo=FakeClock().now().tzinfo) if later else None,
        ),
        st.sampled_from(ENTITIES),
        st.integers(0, 2),
        st.booleans(),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)
before_strategy = st.dictionaries(
    st.sampled_from(ENTITIES), st.sampled_from(["pending", "running"]), max_size=3
)


def _prepare(store: Store, before: dict[str, str]) -> None:
    truncate(store.engine)
    # Running ones first: a claim takes the oldest pending job.
    for entity, state in sorted(before.items(), key=lambda item: (item[1] != "running", item)):
        store.enqueue(EnqueueRequest("noop", entity, {"v": "before"}, 3))
        if state == "running":
            [job] = store.claim("w", ["noop"], 1, 60)
            assert job.entity_id == entity


def _outcome(store: Store, results: list[EnqueueResult]) -> tuple[Any, ...]:
    """What a caller and the table show, with ids replaced by the entity they belong to
    (the two runs draw different ids)."""
    seen = tuple(
        (r.job.entity_id, r.job.payload, r.deduplicated, r.follow_up_marked) for r in results
    )
    table = sorted(
        (
            job.entity_id,
            str(job.state),
            job.payload["v"],
            job.idempotency_key or "",
            job.follow_up,
            (job.follow_up_payload or {}).get("v", -1),
            job.next_run_at.year,
        )
        for job in store.list_jobs(limit=1000)
    )
    return seen, tuple(table)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=requests_strategy, before=before_strategy)
def test_bulk_gives_what_one_by_one_gives(
    engine: Engine, requests: list[EnqueueRequest], before: dict[str, str]
) -> None:
    store = Store(engine, FakeClock())
    _prepare(store, before)
    in_bulk = _outcome(store, store.enqueue_many(requests))
    _prepare(store, before)
    one_by_one = _outcome(store, [store.enqueue(request) for request in requests])
    assert in_bulk == one_by_one


def test_a_naive_time_in_bulk_is_refused_and_stores_nothing(engine: Engine) -> None:
    truncate(engine)
    store = Store(engine, FakeClock())
    kept = store.enqueue(EnqueueRequest("noop", "kept", {}, 3)).job
    batch = [
        EnqueueRequest("noop", "fine", {}, 3),
        EnqueueRequest("noop", "naive", {}, 3, run_at=datetime(2031, 1, 1)),
    ]
    with pytest.raises(StatementError, match="naive datetime"):
        store.enqueue_many(batch)
    assert [job.id for job in store.list_jobs(limit=100)] == [kept.id]


def _connections_become(database: str, expected: int, timeout: float = 10.0) -> int:
    """The count of ``database``'s connections once it is ``expected`` (or at the timeout): a
    closed connection's server process leaves ``pg_stat_activity`` a moment after the client
    hung up, later still on a busy machine."""
    deadline = time.monotonic() + timeout
    while (count := _connections(database)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def _connections(database: str) -> int:
    admin = psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True)
    with admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'",  # not an autovacuum worker
            (database,),
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_stores_on_one_engine_share_one_held_connection_closed_on_dispose(
    engine: Engine, database_url: str
) -> None:
    truncate(engine)
    database = engine.url.database
    assert database is not None
    engine.dispose()
    other = make_engine(database_url)
    try:
        for n in range(30):
            Store(other).enqueue(EnqueueRequest("noop", f"e{n}", {}, 3))
        assert _connections(database) == 1  # the held one, shared by thirty stores
    finally:
        other.dispose()
    assert _connections_become(database, 0) == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_killed_held_connection_costs_no_job_and_no_error(engine: Engine) -> None:
    truncate(engine)
    store = Store(engine)
    first = store.enqueue(EnqueueRequest("noop", "before-kill", {}, 3)).job
    with engine.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    second = store.enqueue(EnqueueRequest("noop", "after-kill", {}, 3))
    assert not second.deduplicated
    again = store.enqueue(EnqueueRequest("noop", "after-kill", {}, 3))
    assert again.deduplicated and again.job.id == second.job.id
    assert {job.entity_id for job in store.list_jobs(limit=10)} == {"before-kill", "after-kill"}
    assert first.id != second.job.id


def _kill_other_backends(engine: Engine) -> None:
    """Terminate every other session on this database and wait until they are gone
    (``pg_terminate_backend`` only signals: a statement sent right after could still run)."""
    with engine.connect() as conn:
        pids = conn.execute(
            text(
                "SELECT array_agg(pid) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        ).scalar_one()
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM unnest(:p) AS pid"), {"p": pids})
        alive = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:p)"
        for _ in range(500):
            conn.rollback()  # pg_stat_activity is a snapshot kept for the whole transaction
            if not pids or conn.execute(text(alive), {"p": pids}).scalar_one() == 0:
                return
            time.sleep(0.01)
        raise AssertionError(f"backends {pids} still alive")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_killed_held_connection_fails_one_claim_and_one_flush_and_sends_neither_twice(
    engine: Engine,
) -> None:
    """The worker's claim and success flush are not safe to send twice (a lost answer to a
    committed claim would orphan a batch while a second claim takes the next), so a broken held
    connection fails the call: the worker logs the outage and its next call reconnects."""
    truncate(engine)
    store = Store(engine)
    for n in range(4):
        store.enqueue(EnqueueRequest("noop", f"e{n}", {}, 3))
    [first] = store.claim("w1", ["noop"], 1, 60)  # the held connection is open now
    _kill_other_backends(engine)
    with pytest.raises(DBAPIError) as failed:
        store.claim("w1", ["noop"], 1, 60)
    assert failed.value.connection_invalidated
    running = [job for job in store.list_jobs(limit=10) if job.state is JobState.RUNNING]
    assert [job.id for job in running] == [first.id]  # no second try claimed another batch
    [second] = store.claim("w1", ["noop"], 1, 60)  # the next call reconnects
    done = Completion(first.id, first.attempt, "w1", AttemptOutcome.SUCCEEDED)
    _kill_other_backends(engine)
    with pytest.raises(DBAPIError):
        store.complete([done])
    [result] = store.complete([done])  # written once, on a fresh connection: applied
    assert result.applied and store.get_job(first.id).state is JobState.SUCCEEDED
    assert store.get_job(second.id).state is JobState.RUNNING


def test_run_at_is_kept_to_the_microsecond_in_bulk(engine: Engine) -> None:
    truncate(engine)
    clock = FakeClock()
    store = Store(engine, clock)
    run_at = clock.now() + timedelta(days=3, microseconds=7)
    [result] = store.enqueue_many([EnqueueRequest("noop", "x", {}, 3, run_at=run_at)])
    assert result.job.next_run_at == run_at
    assert store.get_job(result.job.id).next_run_at == run_at


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_callers_keep_a_few_connections_and_lose_no_job(
    engine: Engine, database_url: str
) -> None:
    """Eight threads enqueue at once, each entity from two of them: every entity gets one job,
    the twin call is told it was deduplicated, the engine keeps at most HELD_SLOTS connections
    between calls, and disposing it closes them all."""
    truncate(engine)
    database = engine.url.database
    assert database is not None
    engine.dispose()
    other = make_engine(database_url)
    entities = [f"e{n}" for n in range(120)]
    try:
        store = Store(other)
        barrier = threading.Barrier(8)

        def caller(number: int) -> list[tuple[str, int, bool]]:
            barrier.wait()
            mine = entities[number % 4 :: 4]  # threads n and n + 4 send the same entities
            results = [store.enqueue(EnqueueRequest("noop", e, {}, 3)) for e in mine]
            return [(r.job.entity_id, r.job.id, r.deduplicated) for r in results]

        with ThreadPoolExecutor(8) as pool:
            outcomes = [row for rows in pool.map(caller, range(8)) for row in rows]
        by_entity: dict[str, set[int]] = {}
        for entity, job_id, _ in outcomes:
            by_entity.setdefault(entity, set()).add(job_id)
        assert all(len(ids) == 1 for ids in by_entity.values()) and len(by_entity) == 120
        assert sum(1 for *_, deduplicated in outcomes if not deduplicated) == 120
        assert len(store.list_jobs(limit=1000)) == 120
        assert other.pool.checkedout() <= HELD_SLOTS  # type: ignore[attr-defined]
    finally:
        other.dispose()
    assert _connections_become(database, 0) == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_held_slots_give_concurrent_callers_their_own_connection(engine: Engine) -> None:
    """Two callers inside ``run`` at once work on two connections; a later caller alone gets
    the first slot's again; with every slot busy a caller still gets a (pooled) connection."""
    held = HeldConnection(engine, slots=2)
    inside, leave = threading.Barrier(3), threading.Event()
    checked_out = engine.pool.checkedout  # type: ignore[attr-defined]
    before = checked_out()

    def backend(conn: Connection) -> int:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    def occupy(conn: Connection) -> int:
        inside.wait(5)
        assert leave.wait(5)
        return backend(conn)

    try:
        with ThreadPoolExecutor(2) as pool:
            busy = [pool.submit(held.run, occupy) for _ in range(2)]
            inside.wait(5)  # both callers hold a slot now
            overflow = held.run(backend)
            leave.set()
            first, second = (future.result() for future in busy)
        assert len({first, second, overflow}) == 3
        assert checked_out() == before + 2  # both kept between calls; the overflow one went back
        assert held.run(backend) in {first, second}  # kept, not checked out anew
        held.release()
        assert checked_out() == before
    finally:
        leave.set()
        held.discard()
