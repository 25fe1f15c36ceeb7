"""Enqueue: one job per entity while active (the partial unique index decides races), keyed
requests checked against their parameters, follow-ups for changes that arrive mid-run."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import psycopg
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    String,
    Table,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.sql.dml import ReturningInsert

from syncbridge.db import driver_sql
from syncbridge.db.base import StoreBase, params_hash
from syncbridge.db.driver import HeldConnection, driver_errors, driver_of, held_connection
from syncbridge.db.notify import notify_enqueued
from syncbridge.db.schema import idempotency_keys, jobs
from syncbridge.db.types import UTCDateTime
from syncbridge.errors import InvalidInput
from syncbridge.models import (
    EnqueueRequest,
    EnqueueResult,
    Job,
    check_correlation_id,
    derived_correlation_id,
)
from syncbridge.states import ACTIVE_STATES, JobState

ACTIVE = [str(state) for state in ACTIVE_STATES]
_UTC = UTCDateTime()
KEY_RECORD = "pk_idempotency_keys"


def key_taken(exc: IntegrityError) -> bool:
    """Did ``exc`` come from ``idempotency_keys``' primary key: a key given before?"""
    orig = exc.orig
    if isinstance(orig, psycopg.errors.UniqueViolation):
        return orig.diag.constraint_name == KEY_RECORD
    return isinstance(orig, sqlite3.IntegrityError) and "idempotency_keys.key" in str(orig)


class EnqueueStore(StoreBase):
    def _insert(self, table: Table = jobs) -> postgresql.Insert | sqlite.Insert:
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        return dialect_insert(table)

    def enqueue(self, request: EnqueueRequest) -> EnqueueResult:
        """Insert a job, or return the entity's active job (marking a running one for a follow-up).

        The partial unique index decides races: ``INSERT .. ON CONFLICT DO NOTHING`` either
        inserts or names a conflict that the follow-up reads resolve. A conflicting job can finish
        between the two statements, so the loop tries again.
        """
        if request.correlation_id is not None:
            check_correlation_id(request.correlation_id)
        digest = params_hash(request.job_type, request.entity_id, request.payload)
        fresh = self._insert_fresh(request, digest)
        if fresh is not None:
            return EnqueueResult(job=fresh, deduplicated=False)
        for _ in range(20):
            try:
                result = self._enqueue_in_transaction(request, digest)
            except IntegrityError as exc:
                if not key_taken(exc):
                    raise
                continue  # another enqueue gave this key first: read it again
            if result is not None:
                return result
        raise RuntimeError("enqueue kept racing with completions; giving up")

    def _enqueue_in_transaction(self, request: EnqueueRequest, digest: str) -> EnqueueResult | None:
        """One try of the slow path: the key's job, a new job, or the entity's active job (a
        key given with it is recorded for that job). None: the active job finished meanwhile."""
        key = request.idempotency_key
        with self.engine.begin() as conn:
            if key is not None:
                keyed = self._keyed_result(conn, key, digest)
                if keyed is not None:
                    return keyed
            job_id = self._insert_job(conn, request, digest)
            if job_id is not None:
                return EnqueueResult(job=self._get(conn, job_id), deduplicated=False)
            if key is not None:
                keyed = self._keyed_result(conn, key, digest)
                if keyed is not None:
                    return keyed
            active = self._active_job(conn, request.job_type, request.entity_id)
            if active is None:
                return None
            if key is not None:
                # The key answers with this job from now on, whenever it is given again.
                self._record_key(conn, key, active.id, digest, if_new=True)
                keyed = self._keyed_result(conn, key, digest)
                if keyed is not None and keyed.job.id != active.id:
                    return keyed  # a concurrent enqueue gave it first, for another job
            if active.state is JobState.RUNNING:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == active.id, jobs.c.state == JobState.RUNNING)
                    .values(
                        follow_up=True,
                        follow_up_payload=request.payload,
                        updated_at=self.now_sql(),
                    )
                )
                return EnqueueResult(
                    job=self._get(conn, active.id), deduplicated=True, follow_up_marked=True
                )
            return EnqueueResult(job=active, deduplicated=True)

    def _insert_fresh(self, request: EnqueueRequest, digest: str) -> Job | None:
        """The common case in one statement: the new job, or None when the entity already has
        an active job or the key is taken (the caller's reads then resolve it). Only what the
        database chose (id, times) comes back; the rest of the job is what was sent.

        On PostgreSQL the statement also sends the wake-up and runs autocommitted (a single
        statement is atomic: no BEGIN/COMMIT round trips) on a held connection (no pre-ping)."""
        key = request.idempotency_key
        if self.dialect != "postgresql":
            row = self.fresh_row(request, digest)
            try:
                with self.engine.begin() as conn:
                    found = conn.execute(self._insert_returning, row).first()
                    if found is not None and key is not None:
                        self._record_key(conn, key, found.id, digest)
            except IntegrityError as exc:
                if not key_taken(exc):
                    raise
                return None  # the key was given before: the slow path answers
            if found is None:
                return None
            return Job.new_pending(
                found.id,
                request,
                digest,
                row["correlation_id"],
                found.next_run_at,
                found.created_at,
            )
        params = self.insert_one_params(request, digest)
        statement = self.insert_one_sql if key is None else self._insert_one_keyed_sql
        try:
            inserted = self._held.run(lambda conn: self._insert_one(conn, params, statement))
        except IntegrityError as exc:
            if not key_taken(exc):
                raise
            inserted = None  # the key was given before: the slow path answers
        if inserted is None:
            self._held.release()  # the slow path checks out its own
            return None
        job_id, next_run_at, created_at, _ = inserted
        return Job.new_pending(
            job_id,
            request,
            digest,
            params["correlation_id"],
            next_run_at.astimezone(UTC),
            created_at.astimezone(UTC),
        )

    def insert_one_params(self, request: EnqueueRequest, digest: str) -> dict[str, Any]:
        """PostgreSQL: the parameters of :attr:`insert_one_sql` for ``request``."""
        params: dict[str, Any] = {
            "job_type": request.job_type,
            "entity_id": request.entity_id,
            "payload": json.dumps(request.payload),
            "max_retries": request.max_retries,
            "timeout_seconds": request.timeout_seconds,
            "run_at": self._stored_time(request.run_at),
            "correlation_id": request.correlation_id or uuid.uuid4().hex,
            "idempotency_key": request.idempotency_key,
            "params_hash": digest,
        }
        if not self.uses_database_clock:
            params["now"] = self.clock.now()
        return params

    def _insert_one(self, conn: Connection, params: dict[str, Any], statement: str) -> Any:
        with driver_errors(conn, statement):
            cursor = driver_of(conn).execute(statement, params, prepare=True)
            return cursor.fetchone()

    @cached_property
    def insert_one_sql(self) -> str:
        """PostgreSQL: one new job in one autocommitted statement (``driver_sql.INSERT_ONE``)."""
        return driver_sql.with_clock(driver_sql.INSERT_ONE, self.uses_database_clock)

    @cached_property
    def _insert_one_keyed_sql(self) -> str:
        """PostgreSQL: :attr:`insert_one_sql` with the key's record (``INSERT_ONE_KEYED``)."""
        return driver_sql.with_clock(driver_sql.INSERT_ONE_KEYED, self.uses_database_clock)

    @cached_property
    def _held(self) -> HeldConnection:
        return held_connection(self.engine)

    @cached_property
    def _autocommit(self) -> Engine:
        return self.engine.execution_options(isolation_level="AUTOCOMMIT")

    def _stored_time(self, value: datetime | None) -> datetime | None:
        """``value`` as stored (UTC), refused when naive: what ``UTCDateTime`` does to a
        parameter, for values that reach the driver without SQLAlchemy. The refusal is raised
        as SQLAlchemy raises it, so callers see one error whichever path ran."""
        try:
            return _UTC.process_bind_param(value, self.engine.dialect)  # type: ignore[no-any-return]
        except ValueError as exc:
            raise StatementError(str(exc), None, None, exc) from None

    def fresh_row(self, request: EnqueueRequest, digest: str | None = None) -> dict[str, Any]:
        """The parameters of :attr:`_insert_returning` for ``request``."""
        if digest is None:
            digest = params_hash(request.job_type, request.entity_id, request.payload)
        return self.time_params() | {
            "job_type": request.job_type,
            "entity_id": request.entity_id,
            "payload": request.payload,
            "max_retries": request.max_retries,
            "timeout_seconds": request.timeout_seconds,
            "run_at": request.run_at,
            "correlation_id": request.correlation_id or uuid.uuid4().hex,
            "idempotency_key": request.idempotency_key,
            "params_hash": digest,
        }

    @cached_property
    def _insert_returning(self) -> ReturningInsert[Any]:
        """SQLite: a new pending job, with what the database chose for it; nothing on a
        conflict. ``lineage_id`` stays NULL (see :meth:`_insert_job`)."""
        now = self.now_param()
        return (
            self._insert()
            .values(
                job_type=bindparam("job_type"),
                entity_id=bindparam("entity_id"),
                payload=bindparam("payload", type_=jobs.c.payload.type),
                state=JobState.PENDING,
                attempt=0,
                budget_start=0,
                max_retries=bindparam("max_retries"),
                timeout_seconds=bindparam("timeout_seconds", type_=Integer()),
                next_run_at=func.coalesce(bindparam("run_at", type_=UTCDateTime()), now),
                correlation_id=bindparam("correlation_id"),
                idempotency_key=bindparam("idempotency_key", type_=String()),
                params_hash=bindparam("params_hash"),
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing()
            .returning(
                jobs.c.id,
                jobs.c.job_type,
                jobs.c.entity_id,
                jobs.c.next_run_at,
                jobs.c.created_at,
            )
        )

    def _insert_job(
        self,
        conn: Connection,
        request: EnqueueRequest,
        digest: str,
        extra: dict[str, Any] | None = None,
    ) -> int | None:
        """A new pending job in the caller's transaction; its id, or None on a conflict.

        ``lineage_id`` is written only when ``extra`` gives it (a replay joins its original's
        lineage). A job that replays nothing is its own lineage and stores NULL, which every
        reader maps to the job's id (``Job.from_row``, ``Job.effective_lineage_id``, the
        ``COALESCE(lineage_id, id)`` of the completion and invariant queries). Writing its own id
        instead would cost an UPDATE after every insert, or, on the bulk paths, ids chosen
        before the insert; NULL needs neither."""
        now = self.now_sql()
        values: dict[str, Any] = {
            "job_type": request.job_type,
            "entity_id": request.entity_id,
            "payload": request.payload,
            "state": JobState.PENDING,
            "attempt": 0,
            "budget_start": 0,
            "max_retries": request.max_retries,
            "timeout_seconds": request.timeout_seconds,
            "next_run_at": now,
            "correlation_id": request.correlation_id or uuid.uuid4().hex,
            "idempotency_key": request.idempotency_key,
            "params_hash": digest,
            "created_at": now,
            "updated_at": now,
        }
        if request.run_at is not None:
            values["next_run_at"] = request.run_at
        values.update(extra or {})
        statement = self._insert().values(**values).on_conflict_do_nothing().returning(jobs.c.id)
        job_id = conn.execute(statement).scalar_one_or_none()
        if job_id is not None and request.idempotency_key is not None:
            self._record_key(conn, request.idempotency_key, job_id, digest)
        if job_id is not None and self.dialect == "postgresql":
            notify_enqueued(conn, request.job_type)
        return job_id

    def _record_key(
        self, conn: Connection, key: str, job_id: int, digest: str, *, if_new: bool = False
    ) -> None:
        """The key's record in ``idempotency_keys``. A key given before raises
        ``IntegrityError`` (``key_taken``), or, with ``if_new``, leaves the record as it was."""
        statement = self._insert(idempotency_keys).values(
            key=key, job_id=job_id, params_hash=digest, created_at=self.now_sql()
        )
        if if_new:
            statement = statement.on_conflict_do_nothing()
        conn.execute(statement)

    def _keyed_result(self, conn: Connection, key: str, digest: str) -> EnqueueResult | None:
        """The job ``key`` answered with before, if it was given before; refused if it came
        with other parameters then."""
        query = (
            select(jobs, idempotency_keys.c.params_hash.label("key_params_hash"))
            .join(idempotency_keys, idempotency_keys.c.job_id == jobs.c.id)
            .where(idempotency_keys.c.key == key)
        )
        row = conn.execute(query).one_or_none()
        if row is None:
            return None
        job = Job.from_row(row)
        if row.key_params_hash != digest:
            raise InvalidInput(
                f"idempotency key {key!r} already belongs to job {job.id} with different parameters"
            )
        return EnqueueResult(job=job, deduplicated=True)

    def _active_job(self, conn: Connection, job_type: str, entity_id: str) -> Job | None:
        query = select(jobs).where(
            jobs.c.job_type == job_type, jobs.c.entity_id == entity_id, jobs.c.state.in_(ACTIVE)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).one_or_none()
        return Job.from_row(row) if row else None

    def _get(self, conn: Connection, job_id: int) -> Job:
        return Job.from_row(conn.execute(select(jobs).where(jobs.c.id == job_id)).one())

    def _enqueue_follow_up(self, conn: Connection, job: Job) -> int | None:
        """One fresh job for the change enqueued while ``job`` ran (newest payload)."""
        follow_up = EnqueueRequest(
            job_type=job.job_type,
            entity_id=job.entity_id,
            payload=job.follow_up_payload if job.follow_up_payload is not None else job.payload,
            max_retries=job.max_retries,
            correlation_id=derived_correlation_id(job.correlation_id, "follow-up"),
            timeout_seconds=job.timeout_seconds,
        )
        digest = params_hash(follow_up.job_type, follow_up.entity_id, follow_up.payload)
        return self._insert_job(conn, follow_up, digest)
