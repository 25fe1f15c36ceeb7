"""FM_003: a claim for ``n`` jobs must take at most ``n``.

Unsafe variant: ``UPDATE jobs .. WHERE id IN (SELECT .. LIMIT n FOR UPDATE SKIP LOCKED) AND state =
'pending'``. The PostgreSQL planner may drive the update from the pending rows and run the
subquery as the inner side of a nested-loop semi-join, once per outer row; each re-run skips the
rows this very statement has already updated and so returns the next ones: five pending rows and
``LIMIT 3`` claim all five. Prevention: the subquery is a
``MATERIALIZED`` CTE in ``LifecycleStore.claim`` (evaluated once). SQLite has neither ``SKIP
LOCKED`` nor this planner: the repro runs on PostgreSQL only, the prevent test on both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import Engine, insert, select, text, update

from syncbridge import migrate
from syncbridge.clock import FakeClock
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.db.schema import attempts, jobs
from syncbridge.models import Job
from syncbridge.states import JobState
from tests.conftest import create_postgres_database, drop_postgres_database, truncate
from tests.failure_modes.support import request, violations

PENDING, LIMIT = 5, 3


class InlinedClaimStore(Store):
    """Unsafe: the claim of ``LifecycleStore.claim`` with the due ids as an ``IN`` subquery."""

    def claim(
        self,
        worker_id: str,
        job_types: Sequence[str],
        limit: int,
        lease_seconds: float,
        isolated: bool = False,
    ) -> list[Job]:
        due = (
            select(jobs.c.id)
            .where(
                jobs.c.state == JobState.PENDING,
                jobs.c.next_run_at <= self.now_sql(),
                jobs.c.job_type.in_(list(job_types)),
                jobs.c.isolate == isolated,
            )
            .order_by(jobs.c.next_run_at, jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(due.scalar_subquery()), jobs.c.state == JobState.PENDING)
                .values(
                    state=JobState.RUNNING,
                    attempt=jobs.c.attempt + 1,
                    lease_owner=worker_id,
                    lease_expires_at=self.now_sql(lease_seconds),
                    updated_at=self.now_sql(),
                )
                .returning(*jobs.c)
            ).all()
            claimed = [Job.from_row(row) for row in rows]
            for job in claimed:
                conn.execute(
                    insert(attempts).values(
                        job_id=job.id,
                        number=job.attempt,
                        worker_id=worker_id,
                        started_at=job.updated_at,
                        outcome="running",
                    )
                )
        return claimed


@pytest.fixture(scope="module")
def postgres_engine() -> Iterator[Engine]:
    """A PostgreSQL database of this test's own (the repro means nothing on SQLite)."""
    url = create_postgres_database("fm003_repro")
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        drop_postgres_database(url)


def fill(store: Store) -> None:
    for n in range(PENDING):
        store.enqueue(request(f"e{n}"))


@pytest.mark.postgres
def test_repro_inlined_subquery_claims_more_than_the_limit(postgres_engine: Engine) -> None:
    unsafe = InlinedClaimStore(postgres_engine, FakeClock())
    for _trial in range(3):
        truncate(postgres_engine)
        fill(unsafe)
        claimed = unsafe.claim("w1", ["noop"], LIMIT, 60)
        assert len(claimed) == PENDING > LIMIT  # asked for 3, leased 5
    due = (
        "SELECT id FROM jobs WHERE state = 'pending' ORDER BY next_run_at, id"
        " LIMIT 3 FOR UPDATE SKIP LOCKED"
    )
    claim = f"UPDATE jobs SET state = 'running' WHERE id IN ({due}) AND state = 'pending'"
    with postgres_engine.connect() as conn:
        plan = "\n".join(conn.execute(text(f"EXPLAIN {claim}")).scalars())
    assert "Nested Loop Semi Join" in plan  # the subquery is re-run once per outer row


def test_prevented_claim_takes_at_most_the_limit(store: Store) -> None:
    for _trial in range(3):
        truncate(store.engine)
        fill(store)
        first = store.claim("w1", ["noop"], LIMIT, 60)
        second = store.claim("w2", ["noop"], LIMIT, 60)
        assert (len(first), len(second)) == (LIMIT, PENDING - LIMIT)
        assert not {j.id for j in first} & {j.id for j in second}
        assert store.claim("w3", ["noop"], LIMIT, 60) == []
        assert violations(store) == {}
