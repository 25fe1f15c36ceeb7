"""FM_001: fifty concurrent enqueues for one entity must leave one active job (INV_006).

Unsafe variant: an enqueue that checks for an active job and then inserts (check-then-act), on a
schema without the partial unique index. Prevention: the index, and ``INSERT .. ON CONFLICT DO
NOTHING`` in ``LifecycleStore.enqueue``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Index, insert, text
from sqlalchemy.exc import IntegrityError

from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.db.schema import jobs
from syncbridge.models import EnqueueRequest, EnqueueResult
from tests.conftest import truncate
from tests.failure_modes.support import request, violations

RACERS = 50
ENTITY = "customer-42"


class CheckThenInsertStore(Store):
    """Unsafe: looks for the entity's active job in one transaction, inserts in the next."""

    def __init__(self, engine: Engine, between: Callable[[], object]) -> None:
        super().__init__(engine)
        self.between = between

    def enqueue(self, request: EnqueueRequest) -> EnqueueResult:
        with self.engine.begin() as conn:
            active = self._active_job(conn, request.job_type, request.entity_id)
        if active is not None:
            return EnqueueResult(job=active, deduplicated=True)
        self.between()  # another enqueue may run here: nothing stops it
        now = self.clock.now()
        with self.engine.begin() as conn:
            job_id = conn.execute(
                insert(jobs)
                .values(
                    job_type=request.job_type,
                    entity_id=request.entity_id,
                    payload=request.payload,
                    state="pending",
                    max_retries=request.max_retries,
                    next_run_at=now,
                    correlation_id=uuid.uuid4().hex,
                    params_hash="-",
                    created_at=now,
                    updated_at=now,
                )
                .returning(jobs.c.id)
            ).scalar_one()
            return EnqueueResult(job=self._get(conn, job_id), deduplicated=False)


def _active_index() -> Index:
    return next(index for index in jobs.indexes if index.name == "uq_jobs_active_entity")


@contextmanager
def without_active_index(engine: Engine) -> Iterator[None]:
    """The schema as it would be without ``uq_jobs_active_entity``; restored afterwards."""
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX uq_jobs_active_entity"))
    try:
        yield
    finally:
        truncate(engine)
        with engine.begin() as conn:
            _active_index().create(conn)


def race(database_url: str, make_store: Callable[[Engine, threading.Barrier], Store]) -> list[Any]:
    """RACERS threads, each with its own engine (own connection), released at once. Returns each
    racer's result or the exception it raised."""
    engines = [make_engine(database_url) for _ in range(RACERS)]
    start, gap = threading.Barrier(RACERS), threading.Barrier(RACERS)

    def one(index: int) -> Any:
        store = make_store(engines[index], gap)
        start.wait()
        try:
            return store.enqueue(request(ENTITY, payload={"racer": index}))
        except IntegrityError as exc:
            return exc

    try:
        with ThreadPoolExecutor(RACERS) as pool:
            return list(pool.map(one, range(RACERS)))
    finally:
        for engine in engines:
            engine.dispose()


def check_then_insert(engine: Engine, gap: threading.Barrier) -> Store:
    # Every racer passes its check before any inserts: the worst interleaving, made certain.
    return CheckThenInsertStore(engine, lambda: gap.wait(timeout=10))


def test_repro_check_then_insert_without_index_makes_duplicates(
    engine: Engine, database_url: str
) -> None:
    truncate(engine)
    store = Store(engine)
    with without_active_index(engine):
        results = race(database_url, check_then_insert)
        assert all(isinstance(r, EnqueueResult) and not r.deduplicated for r in results)
        assert store.counts_by_state()["pending"] == RACERS  # fifty runners for one entity
        assert violations(store) == {"INV_006": 1}


def test_prevented_fifty_concurrent_enqueues_make_one_active_job(
    engine: Engine, database_url: str
) -> None:
    truncate(engine)
    store = Store(engine)
    results = race(database_url, lambda engine, _gap: Store(engine))
    assert len({r.job.id for r in results}) == 1
    assert sum(not r.deduplicated for r in results) == 1
    assert store.counts_by_state()["pending"] == 1
    assert violations(store) == {}

    # The index is the guarantee, not the caller: even the unsafe caller cannot add a second job.
    truncate(engine)
    results = race(database_url, check_then_insert)
    assert sum(isinstance(r, EnqueueResult) for r in results) == 1
    assert sum(isinstance(r, IntegrityError) for r in results) == RACERS - 1
    assert store.counts_by_state()["pending"] == 1
    assert violations(store) == {}
