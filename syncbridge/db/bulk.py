"""Bulk enqueue and retention: the hot tables stay small without losing what idempotency keys,
replay links and the ledger still need."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import and_, delete, exists, select
from sqlalchemy.exc import IntegrityError

from syncbridge.db import driver_sql, sqlite_sql
from syncbridge.db.base import params_hash
from syncbridge.db.driver import driver_errors, driver_of, sqlite_driver_of, sqlite_errors
from syncbridge.db.outcomes import OutcomeStore
from syncbridge.db.schema import (
    attempts,
    idempotency_keys,
    jobs,
    ledger,
    reconcile_asks,
    workers,
)
from syncbridge.errors import InvalidBatchRequest
from syncbridge.models import EnqueueRequest, EnqueueResult, Job, correlation_id_problem
from syncbridge.states import TERMINAL_STATES

CHUNK = 1000
# Bulk enqueue inserts this many requests per transaction.
ENQUEUE_CHUNK = 10_000


class BulkStore(OutcomeStore):
    def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[EnqueueResult]:
        """Enqueue every request, with the results :meth:`enqueue` would give one by one in
        this order. Per chunk, one bulk insert takes each request whose entity and key no
        earlier request of the chunk names (so none of them can depend on another); the rest,
        and any that met an active job or a used key, go through the single-job path (dedupe,
        follow-up, key checks) afterwards, in request order.

        A key given twice with different parameters, or already owned by a job with different
        parameters, refuses the whole batch before anything is stored
        (:class:`InvalidBatchRequest`). Only a key taken by a concurrent enqueue after that
        check, or a lost database, can stop a batch midway, after some chunks committed."""
        digests = self._refuse_bad_requests(requests)
        results: list[EnqueueResult | None] = [None] * len(requests)
        for start in range(0, len(requests), ENQUEUE_CHUNK):
            chunk = requests[start : start + ENQUEUE_CHUNK]
            independent = _independent(chunk)
            inserted = self._insert_many([chunk[i] for i in independent], digests)
            for position, job in zip(independent, inserted, strict=True):
                if job is not None:
                    results[start + position] = EnqueueResult(job=job, deduplicated=False)
            for position, request in enumerate(chunk, start):
                if results[position] is None:
                    results[position] = self.enqueue(request)
        return [result for result in results if result is not None]

    def _refuse_bad_requests(self, requests: Sequence[EnqueueRequest]) -> dict[str, str]:
        """What ``enqueue`` would refuse for a key (or a correlation id), checked for the whole
        batch at once. Returns each key's parameter hash (one per key, as checked), which the
        rows reuse."""
        keyed: dict[str, tuple[int, str]] = {}
        for index, request in enumerate(requests):
            if request.correlation_id is not None:
                problem = correlation_id_problem(request.correlation_id)
                if problem is not None:
                    raise InvalidBatchRequest(index, f"correlation id {problem}")
            key = request.idempotency_key
            if key is None:
                continue
            digest = params_hash(request.job_type, request.entity_id, request.payload)
            if keyed.setdefault(key, (index, digest))[1] != digest:
                raise InvalidBatchRequest(
                    index,
                    f"idempotency key {key!r} was given earlier in the batch with different "
                    "parameters",
                )
        if not keyed:
            return {}
        for job_id, key, digest in self._key_records(list(keyed)):
            index, wanted = keyed[key]
            if digest != wanted:
                raise InvalidBatchRequest(
                    index,
                    f"idempotency key {key!r} already belongs to job {job_id} with "
                    "different parameters",
                )
        return {key: digest for key, (_, digest) in keyed.items()}

    def _key_records(self, keys: list[str]) -> Iterator[tuple[int, str, str]]:
        """(job id, key, params hash) of those of ``keys`` given before. PostgreSQL: one
        statement with the keys as an array (an expanding IN of thousands of parameters costs
        more to build than to run); SQLite: in chunks under its parameter limit."""
        with self.reading() as conn:
            if self.dialect == "postgresql":
                with driver_errors(conn, driver_sql.KEY_RECORDS):
                    rows = driver_of(conn).execute(driver_sql.KEY_RECORDS, {"keys": keys})
                    yield from rows.fetchall()
                return
            given = idempotency_keys.c
            for start in range(0, len(keys), CHUNK):
                owners = select(given.job_id, given.key, given.params_hash).where(
                    given.key.in_(keys[start : start + CHUNK])
                )
                for row in conn.execute(owners):
                    yield row.job_id, row.key, row.params_hash

    def _insert_many(
        self, requests: list[EnqueueRequest], digests: Mapping[str, str]
    ) -> list[Job | None]:
        """The new job of each request, None where it met an active job or a used key. No two
        requests may share an entity or a key (``enqueue_many`` sees to it). ``digests``: the
        parameter hash of each key, computed by the key check."""
        if not requests:
            return []
        if self.dialect == "postgresql":
            try:
                return list(self._copy_jobs(requests, digests))
            except IntegrityError as exc:
                if not isinstance(exc.orig, psycopg.errors.UniqueViolation):
                    raise
            return _unkeyed_only(requests, self._insert_staged)
        try:
            return list(self._insert_jobs_on_sqlite(requests, digests))
        except IntegrityError as exc:
            if not isinstance(exc.orig, sqlite3.IntegrityError):
                raise
        return _unkeyed_only(requests, self._insert_each_on_sqlite)

    def _insert_each_on_sqlite(self, requests: list[EnqueueRequest]) -> list[Job | None]:
        """SQLite, when some row conflicts: every row with ``ON CONFLICT DO NOTHING``."""
        rows = [self.fresh_row(request) for request in requests]
        with self.engine.begin() as conn:
            fresh = conn.execute(self._insert_returning, rows).all()
        by_entity = {(row.job_type, row.entity_id): row for row in fresh}
        jobs_: list[Job | None] = []
        for request, row in zip(requests, rows, strict=True):
            found = by_entity.get((request.job_type, request.entity_id))
            jobs_.append(
                None
                if found is None
                else Job.new_pending(
                    found.id,
                    request,
                    row["params_hash"],
                    row["correlation_id"],
                    found.next_run_at,
                    found.created_at,
                )
            )
        return jobs_

    def _copy_jobs(self, requests: list[EnqueueRequest], digests: Mapping[str, str]) -> list[Job]:
        """PostgreSQL, optimistic: every row in one ``COPY`` into ``jobs`` (the fastest way
        in), with ids drawn from the table's sequence first. ``COPY`` has no ``ON CONFLICT``:
        the first row that meets an active job of its entity or a used key fails it (the same
        unique indexes decide, with the same waits on concurrent inserts) and nothing of the
        chunk is written. The server inserts while this loop hashes and formats the next rows.

        Time: the transaction's ``now()``, read in its first statement, is what ``now()``
        would write for every row of it; with an injected clock, the clock's value."""
        job_types = sorted({request.job_type for request in requests})
        with self.engine.begin() as conn:
            driver = driver_of(conn)
            with driver_errors(conn, driver_sql.COPY_JOBS), driver.cursor() as cursor:
                cursor.execute(driver_sql.RESERVE, {"count": len(requests), "job_types": job_types})
                reserved = cursor.fetchone()
                assert reserved is not None
                database_now, ids, _ = reserved
                now = (
                    database_now.astimezone(UTC)
                    if self.uses_database_clock
                    else self.clock.now().astimezone(UTC)
                )
                # Formatting a datetime costs more than the rest of the row: "now" is
                # formatted once (ISO 8601 with offset: the exact instant, whatever DateStyle).
                stamp = now.isoformat()
                new_jobs = []
                with cursor.copy(driver_sql.COPY_JOBS) as copy:
                    for row, job in self._new_rows(requests, digests, ids, now, stamp, _iso):
                        copy.write_row(row)
                        new_jobs.append(job)
                keys = _key_rows(new_jobs, stamp)
                if keys:
                    with cursor.copy(driver_sql.COPY_KEYS) as copy:
                        for key_row in keys:
                            copy.write_row(key_row)
        return new_jobs

    def _insert_jobs_on_sqlite(
        self, requests: list[EnqueueRequest], digests: Mapping[str, str]
    ) -> list[Job]:
        """SQLite, optimistic, as :meth:`_copy_jobs` on PostgreSQL: every row through one
        ``executemany`` of a plain insert inside the write transaction, ids from the largest
        one plus one. A row that meets an active job or a used key raises ``IntegrityError``
        and nothing of the batch is written; the caller then inserts row by row with
        ``ON CONFLICT DO NOTHING``. Values are stored as the column types store them
        (``sqlite_sql.stamp`` for times, JSON text), so the claim reads them back unchanged."""
        now = self.clock.now().astimezone(UTC)
        stamp = sqlite_sql.stamp(now)  # formatted once: it costs more than the rest of a row
        with self.engine.begin() as conn, sqlite_errors(conn, sqlite_sql.INSERT_JOB):
            cursor = sqlite_driver_of(conn).cursor()
            (last_id,) = cursor.execute(sqlite_sql.LAST_JOB_ID).fetchone()
            ids = range(last_id + 1, last_id + 1 + len(requests))
            made = list(self._new_rows(requests, digests, ids, now, stamp, sqlite_sql.stamp))
            cursor.executemany(sqlite_sql.INSERT_JOB, [row for row, _ in made])
            cursor.executemany(sqlite_sql.INSERT_KEY, _key_rows([job for _, job in made], stamp))
        return [job for _, job in made]

    def _new_rows(
        self,
        requests: list[EnqueueRequest],
        digests: Mapping[str, str],
        ids: Sequence[int],
        now: datetime,
        stamp: str,
        formatted: Callable[[datetime], str],
    ) -> Iterator[tuple[tuple[Any, ...], Job]]:
        """Per request, the values of a new pending job's row in the order of
        ``driver_sql.COPY_JOBS`` and ``sqlite_sql.INSERT_JOB`` (times as ``formatted`` writes
        them; ``stamp`` is ``now`` so written), and the job it makes. A keyed request's
        parameter hash comes from ``digests`` (the key check computed it; a key names one
        hash within a batch), the others' is computed here."""
        for job_id, request, random_id in zip(
            ids, requests, _random_ids(len(requests)), strict=True
        ):
            key = request.idempotency_key
            digest = digests.get(key) if key is not None else None
            if digest is None:
                digest = params_hash(request.job_type, request.entity_id, request.payload)
            correlation_id = request.correlation_id or random_id
            run_at, run_at_text = now, stamp
            if request.run_at is not None:
                run_at = self._utc(request.run_at)
                run_at_text = formatted(run_at)
            row = (
                job_id,
                request.job_type,
                request.entity_id,
                json.dumps(request.payload),
                "pending",
                request.max_retries,
                request.timeout_seconds,
                run_at_text,
                correlation_id,
                request.idempotency_key,
                digest,
                stamp,
                stamp,
            )
            yield row, Job.new_pending(job_id, request, digest, correlation_id, run_at, now)

    def _insert_staged(self, requests: list[EnqueueRequest]) -> list[Job | None]:
        """PostgreSQL, when some row conflicts: ``COPY`` into a session-local staging table,
        then one ``INSERT .. SELECT .. ON CONFLICT DO NOTHING`` in request order."""
        rows = []
        with self.engine.begin() as conn:
            driver = driver_of(conn)
            with driver_errors(conn, driver_sql.INSERT_STAGED), driver.cursor() as cursor:
                cursor.execute(driver_sql.STAGING_TABLE)
                with cursor.copy(driver_sql.COPY_STAGING) as copy:
                    for order, request in enumerate(requests):
                        row = (
                            order,
                            request.job_type,
                            request.entity_id,
                            json.dumps(request.payload),
                            request.max_retries,
                            request.timeout_seconds,
                            None if request.run_at is None else self._utc(request.run_at),
                            request.correlation_id or uuid.uuid4().hex,
                            request.idempotency_key,
                            params_hash(request.job_type, request.entity_id, request.payload),
                        )
                        copy.write_row(row)
                        rows.append(row)
                params = {} if self.uses_database_clock else {"now": self.clock.now()}
                cursor.execute(self._insert_staged_sql, params)
                fresh = {(row[1], row[2]): row for row in cursor.fetchall()}
                if fresh:
                    job_types = sorted({job_type for job_type, _ in fresh})
                    cursor.execute(driver_sql.NOTIFY_TYPES, {"job_types": job_types})
        new_jobs: list[Job | None] = []
        for request, row in zip(requests, rows, strict=True):
            found = fresh.get((request.job_type, request.entity_id))
            new_jobs.append(
                None
                if found is None
                else Job.new_pending(
                    found[0],
                    request,
                    row[9],
                    row[7],
                    found[3].astimezone(UTC),
                    found[4].astimezone(UTC),
                )
            )
        return new_jobs

    @property
    def _insert_staged_sql(self) -> str:
        return driver_sql.with_clock(driver_sql.INSERT_STAGED, self.uses_database_clock)

    def _utc(self, value: datetime) -> datetime:
        stored = self._stored_time(value)  # refuses a naive value
        assert stored is not None
        return stored.astimezone(UTC)

    def refresh_statistics(self) -> None:
        """``ANALYZE`` the jobs table, as autovacuum would within a minute or so. Right after a
        bulk load PostgreSQL would otherwise take the table for a small one and plan each claim
        as "every pending job, then sort" instead of reading ``ix_jobs_runnable`` in order."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE jobs" if self.dialect == "postgresql" else "ANALYZE")

    def prune(self, finished_before: datetime, dry_run: bool = False) -> int:
        """Delete terminal jobs finished before the cutoff, with their attempts, except those
        that an idempotency key, a ledger row or a replay link still needs, and those reconcile
        is still asking about (its upstream could not tell yet whether their effect happened)."""
        replayer = jobs.alias()
        doomed = select(jobs.c.id).where(
            jobs.c.state.in_([str(s) for s in TERMINAL_STATES]),
            jobs.c.finished_at < finished_before,
            jobs.c.idempotency_key.is_(None),
            ~exists().where(idempotency_keys.c.job_id == jobs.c.id),
            ~exists().where(ledger.c.job_id == jobs.c.id),
            ~exists().where(replayer.c.replay_of_job_id == jobs.c.id),
            # Still asked about: its effect may exist upstream with no record here yet.
            ~exists().where(reconcile_asks.c.job_id == jobs.c.id),
        )
        if self.dialect == "postgresql" and not dry_run:
            # Locked, and skipped where locked: a reconciler recording an ask or an answer for
            # one of them (it locks the job's row) either finishes first, and the job is then
            # not doomed or skipped, or waits for the delete and finds the job gone.
            doomed = doomed.with_for_update(of=jobs, skip_locked=True)
        with self.engine.begin() as conn:
            ids = list(conn.execute(doomed).scalars())
            if dry_run or not ids:
                return len(ids)
            for start in range(0, len(ids), CHUNK):
                batch = ids[start : start + CHUNK]
                conn.execute(delete(attempts).where(attempts.c.job_id.in_(batch)))
                conn.execute(delete(jobs).where(jobs.c.id.in_(batch)))
            conn.execute(
                delete(workers).where(
                    and_(workers.c.stopped_at.is_not(None), workers.c.stopped_at < finished_before)
                )
            )
        return len(ids)


def _iso(value: datetime) -> str:
    """ISO 8601 with its offset: the exact instant to ``COPY``, whatever the server's DateStyle."""
    return value.isoformat()


def _random_ids(count: int) -> list[str]:
    """``count`` values of ``uuid.uuid4().hex`` (the default correlation id) from one call for
    random bytes: uuid4 per row costs a tenth of the whole row here."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes(byte & 0x0F | 0x40 for byte in raw[6::16])  # version 4
    raw[8::16] = bytes(byte & 0x3F | 0x80 for byte in raw[8::16])  # RFC 4122 variant
    text = raw.hex()
    return [text[start : start + 32] for start in range(0, 32 * count, 32)]


def _independent(requests: Sequence[EnqueueRequest]) -> list[int]:
    """Positions of the requests whose entity and key no earlier request names. Inserting
    those together gives what inserting them one by one would: none can change what another
    finds, nor what any request between them finds (each other request names another entity
    and key, and its own earlier ones go first)."""
    entities: set[tuple[str, str]] = set()
    keys: set[str] = set()
    independent = []
    for position, request in enumerate(requests):
        entity = (request.job_type, request.entity_id)
        key = request.idempotency_key
        if entity not in entities and (key is None or key not in keys):
            independent.append(position)
        entities.add(entity)
        if key is not None:
            keys.add(key)
    return independent


def _key_rows(new_jobs: Sequence[Job], stamp: str) -> list[tuple[str, int, str, str]]:
    """The ``idempotency_keys`` records of the keyed jobs among ``new_jobs``."""
    return [
        (job.idempotency_key, job.id, job.params_hash, stamp)
        for job in new_jobs
        if job.idempotency_key is not None
    ]


def _unkeyed_only(
    requests: list[EnqueueRequest],
    insert: Callable[[list[EnqueueRequest]], list[Job | None]],
) -> list[Job | None]:
    """``insert`` for the requests without a key; None for the keyed ones, which then take the
    single-job path. The conflict-aware bulk paths insert with ``ON CONFLICT DO NOTHING`` and
    cannot record a key in the same statement without keeping a job whose key was given to
    another job before."""
    unkeyed = [n for n, request in enumerate(requests) if request.idempotency_key is None]
    made: list[Job | None] = [None] * len(requests)
    if unkeyed:
        for n, job in zip(unkeyed, insert([requests[n] for n in unkeyed]), strict=True):
            made[n] = job
    return made
