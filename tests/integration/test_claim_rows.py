"""The claim builds its jobs from driver rows (psycopg on PostgreSQL, sqlite3 on SQLite), not
through SQLAlchemy's column types: each claimed job must equal the job as the store reads it
back, field for field, whatever the payload, the times and the text in it."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError

from syncbridge.clock import FakeClock
from syncbridge.db.driver import sqlite_errors
from syncbridge.db.queries import Store
from syncbridge.db.sqlite_sql import stamp
from syncbridge.models import EnqueueRequest

PAYLOADS = [
    {},
    {"nested": {"list": [1, 2.5, None, True], "text": 'quote\' "double" \\ \t\n ünï ✓'}},
    {"big": 2**53, "neg": -1, "empty": ""},
]


def test_claimed_jobs_equal_what_the_store_reads_back(store: Store, clock: FakeClock) -> None:
    ids = []
    for n, payload in enumerate(PAYLOADS):
        due = clock.now() - timedelta(seconds=n, microseconds=n * 7)
        request = EnqueueRequest("noop", f"entity'{n}\\N", payload, 3, run_at=due)
        ids.append(store.enqueue(request).job.id)
    claimed = store.claim("worker-1", ["noop"], 10, lease_seconds=60)
    assert sorted(job.id for job in claimed) == sorted(ids)
    for job in claimed:
        assert job == store.get_job(job.id)
        assert job.lease_expires_at == clock.now() + timedelta(seconds=60)
        assert job.next_run_at.utcoffset() == timedelta(0)


def test_an_isolated_claim_and_a_plain_one_take_their_own_jobs(store: Store) -> None:
    plain = store.enqueue(EnqueueRequest("noop", "plain", {}, 3)).job
    assert store.claim("w", ["noop"], 10, 60, isolated=True) == []
    [job] = store.claim("w", ["noop"], 10, 60)
    assert job.id == plain.id and not job.isolate


def test_stamp_sorts_and_reads_back_as_sqlalchemy_stores_it(clock: FakeClock) -> None:
    whole = clock.now().replace(microsecond=0)
    assert stamp(whole).endswith(".000000")  # never shortened: text comparisons rely on it
    assert stamp(whole) < stamp(whole + timedelta(microseconds=1))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_driver_errors_are_sqlalchemys(store: Store) -> None:
    with (
        store.engine.connect() as conn,
        pytest.raises(OperationalError, match="locked"),
        sqlite_errors(conn, "UPDATE jobs"),
    ):
        raise sqlite3.OperationalError("database is locked")
