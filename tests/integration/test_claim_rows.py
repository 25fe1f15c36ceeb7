"""The claim builds its jobs from driver rows (psycopg on PostgreSQL, sqlite3 on SQLite), not
through SQLAlchemy's column types: each claimed job must equal the job as the store reads it
back, field for field, whatever the payload, the times and the text in it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import OperationalError

from syncbridge.clock import FakeClock
from syncbridge.db.driver import sqlite_errors
from syncbridge.db.queries import Store
from syncbridge.db.sqlite_sql import stamp
from syncbridge.models import ClaimedJob, Completion, EnqueueRequest, ErrorSnapshot
from syncbridge.states import AttemptOutcome

PAYLOADS = [
    {},
    {"nested": {"list": [1, 2.5, None, True], "text": 'quote\' "double" \\ \t\n ünï ✓'}},
    {"big": 2**53, "neg": -1, "empty": ""},
    # What orjson refuses to read and the standard library reads (json_codec.json_loads):
    {"huge": 2**80 + 1, "u64": 2**64 - 1, "floats": [1e308, -0.0, 0.1]},
    {"lone": "\ud800"},
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
        # repr: an int read back as a float of the same value would compare equal
        assert repr(job.payload) == repr(PAYLOADS[ids.index(job.id)])
        assert job.lease_expires_at == clock.now() + timedelta(seconds=60)
        assert job.next_run_at.utcoffset() == timedelta(0)
        stamps = [job.next_run_at, job.created_at, job.updated_at, job.lease_expires_at]
        assert all(t is not None and t.tzinfo is UTC for t in stamps)


def test_a_claim_to_run_is_the_claim_with_only_what_a_worker_runs_with(
    store: Store, clock: FakeClock
) -> None:
    """The worker's claim (11 columns) and the full claim are one statement: the same jobs
    leased the same way, attempt rows opened, and each field it returns equal to the job's,
    a replay's lineage included."""
    dead = store.enqueue(EnqueueRequest("noop", "dead-one", {}, 0)).job
    [running] = store.claim("w0", ["noop"], 1, 60)
    failure = ErrorSnapshot("ValidationError", "bad", retryable=False)
    store.complete([Completion(dead.id, 1, "w0", AttemptOutcome.FAILED, error=failure)])
    replay = store.replay(dead.id)
    ids = [replay.id]
    for n, payload in enumerate(PAYLOADS):
        due = clock.now() - timedelta(seconds=n, microseconds=n * 7)
        request = EnqueueRequest("noop", f"entity'{n}\\N", payload, 3, run_at=due)
        ids.append(store.enqueue(request).job.id)
    claimed = store.claim_to_run("worker-1", ["noop"], 10, lease_seconds=60)
    assert {job.id for job in claimed} == set(ids)
    order = [(store.get_job(job.id).next_run_at, job.id) for job in claimed]
    assert order == sorted(order)  # in due order, as the full claim
    for job in claimed:
        stored = store.get_job(job.id)
        assert stored.lease_owner == "worker-1" and stored.attempt == job.attempt == 1
        assert ClaimedJob.of(stored) == job
        assert repr(job.payload) == repr(stored.payload)
        assert [a.outcome for a in store.attempts_of(job.id)] == ["running"]
    [again] = [job for job in claimed if job.id == replay.id]
    assert again.effective_lineage_id == dead.id != replay.id  # the replay's lineage
    assert store.claim_to_run("worker-1", ["noop"], 10, 60) == []
    assert running.id == dead.id


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


def test_a_time_from_a_session_in_another_zone_is_made_utc() -> None:
    """Store connections run in UTC (``engine.set_session_utc``); a row from any other session
    still gives UTC times, the same instants."""
    from zoneinfo import ZoneInfo

    from syncbridge.models import JOB_FIELDS, Job

    local = datetime(2026, 12, 5, 4, 30, tzinfo=ZoneInfo("Europe/Helsinki"))
    row = {name: None for name in JOB_FIELDS} | {
        "id": 1, "job_type": "noop", "entity_id": "e", "payload": {}, "state": "running",
        "attempt": 1, "budget_start": 0, "max_retries": 3, "next_run_at": local,
        "cancel_requested": False, "isolate": False, "follow_up": False,
        "correlation_id": "c", "params_hash": "h", "created_at": local, "updated_at": local,
    }  # fmt: skip
    job = Job.from_driver_row(list(row.values()))
    assert job.next_run_at == local and job.next_run_at.tzinfo is UTC
    assert job.next_run_at.hour == 2 and job.lineage_id == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_store_connections_load_times_in_utc(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW TIME ZONE").scalar() == "UTC"
        assert conn.exec_driver_sql("SELECT now()").scalar().tzinfo is UTC
        conn.rollback()  # the setting is the session's, not the transaction's
        assert conn.exec_driver_sql("SHOW TIME ZONE").scalar() == "UTC"
