"""FM_004: on SQLite, two connections read the same runnable row, then both write. SQLite only.

Unsafe variants: a deferred ``BEGIN`` (both read; the second write cannot upgrade its read lock:
``database is locked`` at once, the busy timeout never applies), and pysqlite's own transaction
handling (reads run outside any transaction: both writes succeed, one job claimed twice).
Prevention: ``BEGIN IMMEDIATE`` on every transaction, emitted by ``db/engine.py`` with pysqlite's
handling switched off: the second transaction waits before it reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.exc import OperationalError

from syncbridge import migrate
from syncbridge.clock import FakeClock
from syncbridge.db.engine import SQLITE_BUSY_TIMEOUT_MS, make_engine
from syncbridge.db.queries import Store
from syncbridge.db.schema import jobs
from syncbridge.states import JobState
from tests.failure_modes.support import request

# Long enough for both racers to reach the point between their read and their write when they
# can; a racer that cannot (BEGIN IMMEDIATE holds it back) makes the other wait this long once.
RENDEZVOUS_SECONDS = 0.5


def unsafe_engine(url: str, begin: str | None) -> Engine:
    """``make_engine``'s SQLite setup (WAL, busy timeout) with ``begin`` instead of ``BEGIN
    IMMEDIATE``; ``None`` leaves transactions to pysqlite."""
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if begin is not None:
            dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")

    if begin is not None:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

    return engine


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'fm004.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    store = Store(engine, FakeClock())
    for n in range(2):
        store.enqueue(request(f"e{n}"))
    engine.dispose()
    yield url


def read_then_claim(engine: Engine, worker: str, rendezvous: threading.Barrier) -> int | None:
    """A claim written as two statements: read the first runnable id, then take it."""
    with engine.begin() as conn:
        job_id: int | None = conn.execute(
            select(jobs.c.id).where(jobs.c.state == JobState.PENDING).order_by(jobs.c.id).limit(1)
        ).scalar_one_or_none()
        with suppress(threading.BrokenBarrierError):  # the other could not read alongside us
            rendezvous.wait(RENDEZVOUS_SECONDS)
        if job_id is None:
            return None
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(state=JobState.RUNNING, lease_owner=worker, attempt=jobs.c.attempt + 1)
        )
    return job_id


def race(make: Callable[[], Engine]) -> tuple[list[Any], bool]:
    """Two workers, each on its own engine. Returns what each got and whether both were inside
    their transaction, between read and write, at the same time."""
    engines = [make(), make()]
    rendezvous = threading.Barrier(2)

    def one(index: int) -> Any:
        try:
            return read_then_claim(engines[index], f"w{index}", rendezvous)
        except OperationalError as exc:
            return exc

    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(one, range(2)))
    finally:
        for engine in engines:
            engine.dispose()
    return results, not rendezvous.broken


def attempts_by_job(url: str) -> dict[int, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(jobs.c.id, jobs.c.attempt).order_by(jobs.c.id)).all()
    engine.dispose()
    return {job_id: attempt for job_id, attempt in rows}


@pytest.mark.parametrize("begin", ["BEGIN", None], ids=["deferred-begin", "pysqlite-handling"])
def test_repro_without_begin_immediate_claims_collide(url: str, begin: str | None) -> None:
    results, overlapped = race(lambda: unsafe_engine(url, begin))
    assert overlapped  # both read the same row before either wrote
    if begin == "BEGIN":
        errors = [r for r in results if isinstance(r, OperationalError)]
        assert len(errors) == 1 and "database is locked" in str(errors[0])
        assert attempts_by_job(url) == {1: 1, 2: 0}
    else:
        assert results == [1, 1]  # two workers both believe they hold job 1
        assert attempts_by_job(url) == {1: 2, 2: 0}


def test_prevented_begin_immediate_serialises_read_and_write(url: str) -> None:
    results, overlapped = race(lambda: make_engine(url))
    assert not overlapped  # the second transaction could not even read until the first ended
    assert sorted(results) == [1, 2]  # no error, each job claimed once
    assert attempts_by_job(url) == {1: 1, 2: 1}
