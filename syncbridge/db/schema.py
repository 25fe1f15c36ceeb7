"""Table definitions (SQLAlchemy Core). Alembic migrations must match these (a test checks)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)

from syncbridge.db.types import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BIGINT on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY is the rowid alias).
Id = BigInteger().with_variant(Integer(), "sqlite")

ACTIVE = "state IN ('pending', 'running')"
# Jobs that lost a lease wait to run alone; workers probe for them on every idle claim.
ISOLATED = "state = 'pending' AND isolate"
FINISHED = "state NOT IN ('pending', 'running')"
HAS_KEY = "idempotency_key IS NOT NULL"
REPLAYS = "lineage_id IS NOT NULL"
REPLAYS_A_JOB = "replay_of_job_id IS NOT NULL"
ATTEMPTS_FILLFACTOR = 50


def partial_index(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    """An index over the rows that match ``where``, the same on both databases."""
    return Index(
        name, *columns, unique=unique, sqlite_where=text(where), postgresql_where=text(where)
    )


jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_type", String(100), nullable=False),
    Column("entity_id", String(255), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    # Attempt number when the retry budget last reset (manual retry, shutdown release).
    Column("budget_start", Integer, nullable=False, server_default=text("0")),
    Column("max_retries", Integer, nullable=False),
    Column("timeout_seconds", Integer, nullable=True),
    Column("next_run_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    # Set after a lost lease: the job next runs alone so a poison job cannot take others down.
    Column("isolate", Boolean, nullable=False, server_default=text("false")),
    Column("follow_up", Boolean, nullable=False, server_default=text("false")),
    Column("follow_up_payload", JSON, nullable=True),
    Column("correlation_id", String(200), nullable=False),
    Column("idempotency_key", String(255), nullable=True),
    Column("params_hash", String(64), nullable=False),
    Column("lineage_id", Id, nullable=True),
    Column("replay_of_job_id", Id, ForeignKey("jobs.id"), nullable=True),
    Column("replay_of_attempt_id", Id, nullable=True),
    Column("last_error", JSON, nullable=True),
    Column("effect_status", String(16), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    # Entity first (migration 0005): it also answers "the active jobs of this entity".
    partial_index("uq_jobs_active_entity", "entity_id", "job_type", where=ACTIVE, unique=True),
    partial_index("ix_jobs_runnable", "next_run_at", "id", where="state = 'pending'"),
    partial_index("ix_jobs_isolated", "next_run_at", "id", where=ISOLATED),
    partial_index("ix_jobs_leases", "lease_expires_at", where="state = 'running'"),
    # On PostgreSQL only finished jobs: the active ones are in uq_jobs_active_entity, so a
    # claim (and an enqueue, and a retry) adds no entry here. queries.list_jobs reads both.
    Index("ix_jobs_entity", "entity_id", postgresql_where=text(FINISHED)),
    # Partial on the columns most jobs leave NULL: no job update (two per attempt, neither of
    # them HOT) adds an entry for a job without a key or a replay link (migration 0004).
    partial_index("uq_jobs_idempotency_key", "idempotency_key", where=HAS_KEY, unique=True),
    partial_index("ix_jobs_lineage", "lineage_id", where=REPLAYS),
    partial_index("ix_jobs_replay_of", "replay_of_job_id", where=REPLAYS_A_JOB),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", Id, ForeignKey("jobs.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("worker_id", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("error_class", String(200), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("retryable", Boolean, nullable=True),
    Column("http_status", Integer, nullable=True),
    UniqueConstraint("job_id", "number", name="uq_attempts_job_number"),
    # The dashboard's activity read (Store.attempts_started). started_at is written once, so the
    # attempt's closing update stays HOT (migration 0007).
    Index("ix_attempts_started_at", "started_at"),
)


# Room on each page for the row's one update (the attempt's end), so it stays HOT: no indexed
# column changes (migration 0006 for migrated databases; this for ``metadata.create_all``). A
# listener rather than ``Table(postgresql_with=...)``, which needs SQLAlchemy 2.1.
@event.listens_for(attempts, "after_create")
def _attempts_fillfactor(_table: Table, connection: Connection, **_kw: Any) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ALTER TABLE attempts SET (fillfactor = {ATTEMPTS_FILLFACTOR})")


ledger = Table(
    "ledger",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("effect_key", String(255), nullable=False, unique=True),
    # Not unique: a success files every effect it applied (Success.also_applied, 0010).
    Column("job_id", Id, ForeignKey("jobs.id"), nullable=False, index=True),
    Column("lineage_id", Id, nullable=False),
    Column("upstream", String(100), nullable=False),
    Column("upstream_ref", String(255), nullable=True),
    Column("applied_at", UTCDateTime, nullable=False),
)

# Every idempotency key that has been given, and the job it answered with: the one authority
# on keys (its primary key), whether the key created that job or was given to an enqueue that
# found the entity's active job (migration 0008). jobs.idempotency_key still holds a job's own key.
# params_hash is of the request that gave the key, for "same key, other parameters".
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("job_id", Id, ForeignKey("jobs.id"), nullable=False),
    Column("params_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_idempotency_keys_job", "job_id"),
)

# When reconcile asks again about a job whose upstream could not tell (migration 0009): kept in
# the database, so that a restarted worker does not begin again with the jobs nobody can answer
# for. A row exists only while the job is unanswered; the answer deletes it.
reconcile_asks = Table(
    "reconcile_asks",
    metadata,
    Column("job_id", Id, ForeignKey("jobs.id"), primary_key=True),
    Column("asks", Integer, nullable=False),
    Column("next_ask_at", UTCDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    # The worker whose round holds the job now (Store.take_due), None when nobody does: a hold
    # whose worker stopped or stopped beating is given back by the others' rescuers (0011).
    Column("held_by", String(200), nullable=True),
    partial_index("ix_reconcile_asks_held_by", "held_by", where="held_by IS NOT NULL"),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("job_types", JSON, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_heartbeat", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime, nullable=True),
    # The last beat plus the worker's own lease (renew): past it, the worker is gone (0011).
    Column("alive_until", UTCDateTime, nullable=True),
)
