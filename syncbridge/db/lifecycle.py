"""The job lifecycle in SQL: claim, renew, complete, rescue, release (enqueue: ``enqueue.py``).

Every write about a running job is fenced: ``id``, ``attempt``, ``state = 'running'`` and
``lease_owner`` must all still match, or the write changes nothing and the caller is told.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import timedelta
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Insert,
    Integer,
    Interval,
    Select,
    String,
    Update,
    and_,
    bindparam,
    case,
    func,
    insert,
    not_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from syncbridge.db import driver_sql, sqlite_sql
from syncbridge.db.base import NOW
from syncbridge.db.driver import (
    driver_errors,
    driver_of,
    int_array,
    sqlite_driver_of,
    sqlite_errors,
)
from syncbridge.db.enqueue import EnqueueStore
from syncbridge.db.schema import attempts, jobs, ledger, workers
from syncbridge.db.types import UTCDateTime
from syncbridge.jobtypes import effect_key_lineage, made_by_lineage
from syncbridge.models import (
    ClaimedJob,
    Completion,
    CompletionResult,
    ErrorSnapshot,
    Job,
    RenewResult,
    RescuedJob,
)
from syncbridge.retry import RetryPolicy
from syncbridge.states import AttemptOutcome, EffectStatus, JobState
from syncbridge.transitions import Transition, decide

DEFAULT_POLICY = RetryPolicy()


_Claimed = TypeVar("_Claimed", Job, ClaimedJob)


def _run_order(job: Job | ClaimedJob) -> tuple[Any, int]:
    return job.next_run_at, job.id


class LifecycleStore(EnqueueStore):
    # -- claim ---------------------------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        job_types: Sequence[str],
        limit: int,
        lease_seconds: float,
        isolated: bool = False,
    ) -> list[Job]:
        """Take up to ``limit`` due jobs: running, attempt + 1, leased, attempt rows written.

        ``isolated`` picks only jobs that lost a lease before (they run alone); otherwise only
        jobs that did not.
        """
        if self.dialect == "postgresql":
            return self._claim_rows(
                worker_id,
                job_types,
                limit,
                lease_seconds,
                isolated,
                self._claim_sql,
                Job.from_driver_row,
            )
        if limit <= 0 or not job_types:
            return []
        return self._claim_on_sqlite(worker_id, list(job_types), limit, lease_seconds, isolated)

    def claim_to_run(
        self,
        worker_id: str,
        job_types: Sequence[str],
        limit: int,
        lease_seconds: float,
        isolated: bool = False,
    ) -> list[ClaimedJob]:
        """:meth:`claim`, the same statement and effects, returning only what a worker runs the
        jobs with (the worker's hot path: 11 columns read and built instead of 27)."""
        if self.dialect == "postgresql":
            return self._claim_rows(
                worker_id,
                job_types,
                limit,
                lease_seconds,
                isolated,
                self._claim_to_run_sql,
                ClaimedJob._make,
            )
        # SQLite reads every column anyway (one write transaction through sqlite3).
        claimed = self.claim(worker_id, job_types, limit, lease_seconds, isolated)
        return [ClaimedJob.of(job) for job in claimed]

    def _claim_rows(
        self,
        worker_id: str,
        job_types: Sequence[str],
        limit: int,
        lease_seconds: float,
        isolated: bool,
        statement: str,
        build: Callable[[Any], _Claimed],
    ) -> list[_Claimed]:
        """PostgreSQL: one autocommitted statement (a single statement is atomic: no BEGIN and
        COMMIT round trips) claims and opens the attempt rows, sent through psycopg: turning
        SQLAlchemy rows into jobs cost as much as the statement itself. On a held connection,
        as the success flush: a pool checkout cost more client CPU than the claim's own rows.
        Not sent twice (see ``HeldConnection``). Each row becomes a job through ``build``, in
        run order."""
        if limit <= 0 or not job_types:
            return []
        params = self.time_params(lease=lease_seconds) | {
            "types": list(job_types),
            "limit": limit,
            "isolated": isolated,
            "worker": worker_id,
        }
        if not self.uses_database_clock:
            params |= {"now": params[NOW], "lease_until": params["lease"]}
        else:
            params |= {"lease": params["lease"].total_seconds()}
        rows = self._held.run(lambda conn: self._fetch_all(conn, statement, params), retry=False)
        return sorted(map(build, rows), key=_run_order)

    def _claim_on_sqlite(
        self, worker_id: str, types: list[str], limit: int, lease_seconds: float, isolated: bool
    ) -> list[Job]:
        """SQLite: the claim and the attempt rows in one write transaction, through ``sqlite3``
        (SQLAlchemy's row processing cost as much as the statement)."""
        now = self.clock.now()
        started = sqlite_sql.stamp(now)
        expires = sqlite_sql.stamp(now + timedelta(seconds=lease_seconds))
        statement = sqlite_sql.claim(len(types))
        with self.engine.begin() as conn, sqlite_errors(conn, statement):
            cursor = sqlite_driver_of(conn).cursor()
            rows = cursor.execute(
                statement, [started, *types, isolated, limit, worker_id, expires, started]
            ).fetchall()
            claimed = sorted(map(Job.from_sqlite_row, rows), key=_run_order)
            if claimed:
                cursor.executemany(
                    sqlite_sql.OPEN_ATTEMPT,
                    [(job.id, job.attempt, worker_id, started) for job in claimed],
                )
        return claimed

    @cached_property
    def _claim_statement(self) -> Update:
        due = (
            select(jobs.c.id)
            .where(
                jobs.c.state == JobState.PENDING,
                jobs.c.next_run_at <= self.now_param(),
                jobs.c.job_type.in_(bindparam("types", expanding=True)),
                jobs.c.isolate == bindparam("isolated", type_=Boolean()),
            )
            .order_by(jobs.c.next_run_at, jobs.c.id)
            .limit(bindparam("limit", type_=Integer()))
            .with_for_update(skip_locked=True)
            # Materialized: an inlined subquery can be re-run by the planner and lock (and so
            # claim) more rows than the limit.
            .cte("due")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        return (
            update(jobs)
            .where(jobs.c.id == due.c.id, jobs.c.state == JobState.PENDING)
            .values(
                state=JobState.RUNNING,
                attempt=jobs.c.attempt + 1,
                lease_owner=bindparam("worker", type_=String()),
                lease_expires_at=self.later_param("lease"),
                updated_at=self.now_param(),
            )
            .returning(*jobs.c)
        )

    @staticmethod
    def _fetch_all(conn: Connection, statement: str, params: dict[str, Any]) -> list[Any]:
        with driver_errors(conn, statement):
            return driver_of(conn).execute(statement, params, prepare=True).fetchall()

    @cached_property
    def _claim_sql(self) -> str:
        return driver_sql.with_clock(driver_sql.CLAIM_ALL, self.uses_database_clock)

    @cached_property
    def _claim_to_run_sql(self) -> str:
        return driver_sql.with_clock(driver_sql.CLAIM_TO_RUN, self.uses_database_clock)

    @cached_property
    def _open_attempt(self) -> Insert:
        return insert(attempts)

    # -- renew ---------------------------------------------------------------------------------

    def renew(
        self, worker_id: str, held: Iterable[tuple[int, int]], lease_seconds: float
    ) -> RenewResult:
        """Extend the leases of ``held`` (job id, attempt) in one statement; report the lost."""
        held = list(held)
        with self.engine.begin() as conn:
            conn.execute(
                update(workers)
                .where(workers.c.id == worker_id)
                .values(last_heartbeat=self.now_sql(), alive_until=self.now_sql(lease_seconds))
            )
            if not held:
                return RenewResult(frozenset(), frozenset(), frozenset())
            rows = conn.execute(
                update(jobs)
                .where(
                    tuple_(jobs.c.id, jobs.c.attempt).in_(held),
                    jobs.c.state == JobState.RUNNING,
                    jobs.c.lease_owner == worker_id,
                )
                .values(lease_expires_at=self.now_sql(lease_seconds))
                .returning(jobs.c.id, jobs.c.cancel_requested)
            ).all()
        renewed = frozenset(row.id for row in rows)
        return RenewResult(
            renewed=renewed,
            lost=frozenset(job_id for job_id, _ in held) - renewed,
            cancel_requested=frozenset(row.id for row in rows if row.cancel_requested),
        )

    # -- complete ------------------------------------------------------------------------------

    def complete(
        self, completions: Sequence[Completion], policy: RetryPolicy = DEFAULT_POLICY
    ) -> list[CompletionResult]:
        """Record finished attempts in one transaction, a fixed number of statements per batch
        (fenced read, attempt rows, job rows, ledger). A completion whose fence no longer
        matches (lease lost) writes nothing and comes back with ``applied=False``."""
        if not completions:
            return []
        results: list[CompletionResult | None] = [None] * len(completions)
        rest = self._complete_plain_successes(completions, results)
        if rest:
            with self.engine.begin() as conn:
                batch = self._fenced(conn, [completions[i] for i in rest])
                for index, result in zip(rest, self._record(conn, batch, policy), strict=True):
                    results[index] = result
        return [result for result in results if result is not None]

    def _complete_plain_successes(
        self, completions: Sequence[Completion], results: list[CompletionResult | None]
    ) -> list[int]:
        """Record the batch's plain successes without reading the jobs first: every fence is in
        the UPDATE's WHERE clause. Jobs with a follow-up waiting or a cancel request are left
        out, as is anything the UPDATE did not change: the caller's locked path decides those.
        On PostgreSQL this is one autocommitted statement (one round trip). Fills ``results``
        and returns the indexes still to record."""
        firsts: dict[tuple[int, int], int] = {}
        for index, c in enumerate(completions):
            if c.outcome is AttemptOutcome.SUCCEEDED:
                firsts.setdefault((c.job_id, c.attempt), index)
        if not firsts:
            return list(range(len(completions)))
        chosen = [completions[i] for i in firsts.values()]
        if self.dialect == "postgresql":
            done = self._succeed_in_one_statement(chosen)
        else:
            with self.engine.begin() as conn:
                done = self._succeed_in_steps(conn, chosen)
        for key in done:
            results[firsts[key]] = CompletionResult(key[0], key[1], True, JobState.SUCCEEDED)
        return [i for i in range(len(completions)) if results[i] is None]

    def _succeed_in_one_statement(self, chosen: list[Completion]) -> set[tuple[int, int]]:
        effects = [(c, effect) for c in chosen for effect in c.effects]
        slots: dict[str, int] = {}  # owner -> its place in "owners", from 1 (one per worker)
        owner_slots = [slots.setdefault(c.worker_id, len(slots) + 1) for c in chosen]
        params: dict[str, Any] = {
            "ids": int_array(c.job_id for c in chosen),
            "attempts": int_array(c.attempt for c in chosen),
            "owner_slots": int_array(owner_slots),
            "owners": list(slots),
            "effect_jobs": [c.job_id for c, _ in effects],
            "effect_attempts": [c.attempt for c, _ in effects],
            "effect_keys": [e.effect_key for _, e in effects],
            "effect_upstreams": [e.upstream for _, e in effects],
            "effect_refs": [e.upstream_ref for _, e in effects],
            "effect_lineages": [effect_key_lineage(e.effect_key) for _, e in effects],
        }
        if not self.uses_database_clock:
            params["now"] = self.clock.now()
        succeed = self._succeed_many_sql
        rows = self._held.run(lambda conn: self._fetch_all(conn, succeed, params), retry=False)
        return {(job_id, attempt) for job_id, attempt in rows}

    def _succeed_in_steps(self, conn: Connection, chosen: list[Completion]) -> set[tuple[int, int]]:
        """The same as ``SUCCEED_MANY``, as three statements in one transaction."""
        clock = self.time_params()
        if self.dialect == "sqlite":
            rows = self._succeed_jobs_on_sqlite(conn, chosen)
        else:
            keys = [(c.job_id, c.attempt, c.worker_id) for c in chosen]
            rows = [tuple(row) for row in conn.execute(self._succeed_jobs, clock | {"keys": keys})]
            if rows:
                done_keys = [(job_id, attempt) for job_id, attempt, _ in rows]
                conn.execute(self._succeed_attempts, clock | {"done": done_keys})
        if not rows:
            return set()
        done = {(job_id, attempt) for job_id, attempt, _ in rows}
        lineage = {job_id: lineage_id for job_id, _, lineage_id in rows}
        effects = [
            clock
            | {
                "effect_key": effect.effect_key,
                "job_id": c.job_id,
                "lineage_id": lineage[c.job_id],
                "upstream": effect.upstream,
                "upstream_ref": effect.upstream_ref,
            }
            for c in chosen
            if (c.job_id, c.attempt) in done
            for effect in c.effects
            if made_by_lineage(effect.effect_key, lineage[c.job_id])
        ]
        if effects:
            conn.execute(self._record_effect, effects)
        return done

    def _succeed_jobs_on_sqlite(
        self, conn: Connection, chosen: list[Completion]
    ) -> list[tuple[int, int, int]]:
        """SQLite: the fenced job updates and the attempt rows through ``sqlite3`` (the
        expanding ``IN`` of tuples cost more in SQLAlchemy than in SQLite). Rows: id, attempt,
        lineage id of each job changed."""
        now = sqlite_sql.stamp(self.clock.now())
        changed: list[tuple[int, int, int]] = []
        with sqlite_errors(conn, sqlite_sql.SUCCEED_ATTEMPT):
            cursor = sqlite_driver_of(conn).cursor()
            for start in range(0, len(chosen), sqlite_sql.SUCCEED_CHUNK):
                chunk = chosen[start : start + sqlite_sql.SUCCEED_CHUNK]
                params: list[Any] = [now, now]
                for c in chunk:
                    params += (c.job_id, c.attempt, c.worker_id)
                changed += cursor.execute(sqlite_sql.succeed_jobs(len(chunk)), params).fetchall()
            cursor.executemany(
                sqlite_sql.SUCCEED_ATTEMPT,
                [(now, job_id, attempt) for job_id, attempt, _ in changed],
            )
        return changed

    @cached_property
    def _succeed_jobs(self) -> Update:
        now = self.now_param()
        fence = tuple_(jobs.c.id, jobs.c.attempt, jobs.c.lease_owner)
        return (
            update(jobs)
            .where(
                fence.in_(bindparam("keys", expanding=True)),
                jobs.c.state == JobState.RUNNING,
                not_(jobs.c.follow_up),
                not_(jobs.c.cancel_requested),
            )
            .values(
                state=JobState.SUCCEEDED,
                lease_owner=None,
                lease_expires_at=None,
                isolate=False,
                updated_at=now,
                finished_at=now,
            )
            .returning(
                jobs.c.id,
                jobs.c.attempt,
                func.coalesce(jobs.c.lineage_id, jobs.c.id).label("lineage_id"),
            )
        )

    @property
    def _lineage_of_row(self) -> ColumnElement[Any]:
        return func.coalesce(jobs.c.lineage_id, jobs.c.id).label("lineage_id")

    @cached_property
    def _succeed_attempts(self) -> Update:
        return (
            update(attempts)
            .where(
                tuple_(attempts.c.job_id, attempts.c.number).in_(bindparam("done", expanding=True))
            )
            .values(finished_at=self.now_param(), outcome=AttemptOutcome.SUCCEEDED)
        )

    @cached_property
    def _succeed_many_sql(self) -> str:
        return driver_sql.with_clock(driver_sql.SUCCEED_MANY, self.uses_database_clock)

    def _fenced(
        self, conn: Connection, completions: Sequence[Completion]
    ) -> list[tuple[Completion, Job | None, int | None]]:
        """Each completion with its job (locked) and open attempt row id, or ``None`` where the
        fence (id, attempt, owner, still running) no longer holds. One statement."""
        keys = list({(c.job_id, c.attempt, c.worker_id) for c in completions})
        fenced = {
            (row.id, row.attempt, row.lease_owner): (Job.from_row(row), row.attempt_row_id)
            for row in conn.execute(self._fenced_read, {"keys": keys})
        }
        return [
            (c, *fenced.get((c.job_id, c.attempt, c.worker_id), (None, None))) for c in completions
        ]

    @cached_property
    def _fenced_read(self) -> Select[Any]:
        query = (
            self._running_with_attempt()
            .where(
                tuple_(jobs.c.id, jobs.c.attempt, jobs.c.lease_owner).in_(
                    bindparam("keys", expanding=True)
                )
            )
            .order_by(jobs.c.id)  # one lock order for every writer: no deadlocks
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(of=jobs)
        return query

    @staticmethod
    def _running_with_attempt() -> Select[Any]:
        """Running jobs with the id of their open attempt row."""
        return (
            select(jobs, attempts.c.id.label("attempt_row_id"))
            .select_from(
                jobs.outerjoin(
                    attempts,
                    and_(attempts.c.job_id == jobs.c.id, attempts.c.number == jobs.c.attempt),
                )
            )
            .where(jobs.c.state == JobState.RUNNING)
        )

    def _record(
        self,
        conn: Connection,
        batch: Sequence[tuple[Completion, Job | None, int | None]],
        policy: RetryPolicy,
    ) -> list[CompletionResult]:
        """Write the transitions of fenced, locked jobs (``None``: the fence failed)."""
        results: list[CompletionResult] = []
        closed: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []
        effects: list[dict[str, Any]] = []
        follow_ups: list[tuple[int, Job]] = []
        seen: set[int] = set()
        for completion, job, attempt_row_id in batch:
            if job is None or job.id in seen:  # lease lost, or the same attempt reported twice
                results.append(CompletionResult(completion.job_id, completion.attempt, False))
                continue
            seen.add(job.id)
            error = completion.error
            transition = decide(
                job, completion.outcome, policy, error.retry_after if error else None
            )
            closed.append(
                {
                    "b_id": attempt_row_id,
                    "b_outcome": str(completion.outcome),
                    "b_error_class": error.error_class if error else None,
                    "b_error_message": error.message if error else None,
                    "b_retryable": error.retryable if error else None,
                    "b_http_status": error.http_status if error else None,
                }
            )
            # A success after a cancel request still applied its effect (transitions.py): the
            # ledger row is written and the cancelled job says the effect is applied.
            succeeded = completion.outcome is AttemptOutcome.SUCCEEDED
            applied = completion.effects if succeeded else ()
            overridden = bool(applied) and transition.state is not JobState.SUCCEEDED
            moved.append(self._moved_row(job, transition, error, attempt_row_id, overridden))
            effects += [
                {
                    "effect_key": effect.effect_key,
                    "job_id": job.id,
                    "lineage_id": job.effective_lineage_id,
                    "upstream": effect.upstream,
                    "upstream_ref": effect.upstream_ref,
                }
                for effect in applied
                if made_by_lineage(effect.effect_key, job.effective_lineage_id)
            ]
            if transition.enqueue_follow_up:
                follow_ups.append((len(results), job))
            results.append(CompletionResult(job.id, job.attempt, True, state=transition.state))
        if not moved:
            return results
        clock = self.time_params()
        if clock:  # not the database clock: every row carries "now"
            for row in (*closed, *moved, *effects):
                row.update(clock)
        conn.execute(self._close_attempt, closed)
        written = conn.execute(self._write_transition, moved).rowcount
        if self.engine.dialect.supports_sane_multi_rowcount and written != len(moved):
            raise RuntimeError(f"fenced write of {len(moved)} locked jobs changed {written} rows")
        if effects:
            conn.execute(self._record_effect, effects)
        for index, job in follow_ups:
            follow_up_id = self._enqueue_follow_up(conn, job)
            results[index] = replace(results[index], follow_up_job_id=follow_up_id)
        return results

    def _moved_row(
        self,
        job: Job,
        transition: Transition,
        error: ErrorSnapshot | None,
        attempt_row_id: int | None,
        effect_applied: bool = False,
    ) -> dict[str, Any]:
        """``effect_applied``: mark the job's effect applied (a success that ends a job
        otherwise, as a cancel request does)."""
        pending = transition.state is JobState.PENDING
        delay = timedelta(seconds=transition.delay_seconds)
        last_error = None
        if error is not None:
            last_error = error.to_dict() | {"attempt_id": attempt_row_id, "attempt": job.attempt}
        return {
            "b_id": job.id,
            "b_attempt": job.attempt,
            "b_owner": job.lease_owner,
            "b_state": str(transition.state),
            "b_isolate": transition.isolate,
            # The database clock moves next_run_at itself; any other clock is applied here.
            "b_delay": delay if pending else None,
            "b_next_run_at": self.clock.now() + delay if pending else None,
            "b_finished": not pending,
            "b_budget_inc": 1 if pending and not transition.charge else 0,
            "b_last_error": last_error,
            "b_consume_follow_up": transition.enqueue_follow_up,
            "b_effect_status": str(EffectStatus.APPLIED) if effect_applied else None,
        }

    @cached_property
    def _close_attempt(self) -> Update:
        return (
            update(attempts)
            .where(attempts.c.id == bindparam("b_id"))
            .values(
                finished_at=self.now_param(),
                outcome=bindparam("b_outcome"),
                error_class=bindparam("b_error_class"),
                error_message=bindparam("b_error_message"),
                retryable=bindparam("b_retryable"),
                http_status=bindparam("b_http_status"),
            )
        )

    @cached_property
    def _record_effect(self) -> Insert:
        # A replay or reconcile meeting an existing row links to it; never abort the batch.
        return self._ledger_insert().values(applied_at=self.now_param())

    @cached_property
    def _write_transition(self) -> Update:
        """The fenced transition of one job, run once per job of a batch (executemany)."""
        now = self.now_param()
        if self.uses_database_clock:
            next_run_at: Any = now + bindparam("b_delay", type_=Interval())
        else:
            next_run_at = bindparam("b_next_run_at", type_=UTCDateTime())
        return (
            update(jobs)
            .where(
                jobs.c.id == bindparam("b_id"),
                jobs.c.attempt == bindparam("b_attempt"),
                jobs.c.state == JobState.RUNNING,
                jobs.c.lease_owner.is_not_distinct_from(bindparam("b_owner", type_=String())),
            )
            .values(
                state=bindparam("b_state"),
                isolate=bindparam("b_isolate", type_=Boolean()),
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
                next_run_at=func.coalesce(next_run_at, jobs.c.next_run_at),
                finished_at=case(
                    (bindparam("b_finished", type_=Boolean()), now), else_=jobs.c.finished_at
                ),
                budget_start=jobs.c.budget_start + bindparam("b_budget_inc", type_=Integer()),
                last_error=func.coalesce(
                    bindparam("b_last_error", type_=JSON(none_as_null=True)), jobs.c.last_error
                ),
                follow_up=and_(
                    jobs.c.follow_up,
                    not_(bindparam("b_consume_follow_up", type_=Boolean())),
                ),
                effect_status=func.coalesce(
                    bindparam("b_effect_status", type_=String()), jobs.c.effect_status
                ),
            )
        )

    def _ledger_insert(self) -> postgresql.Insert | sqlite.Insert:
        return self._insert(ledger).on_conflict_do_nothing()

    # -- rescue and release --------------------------------------------------------------------

    def rescue(self, policy: RetryPolicy = DEFAULT_POLICY, limit: int = 500) -> list[RescuedJob]:
        """Return jobs whose lease expired to pending (backoff, isolated) or to dead."""
        query = (
            self._running_with_attempt()
            .where(jobs.c.lease_expires_at < self.now_sql())
            .order_by(jobs.c.lease_expires_at)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(of=jobs, skip_locked=True)
        with self.engine.begin() as conn:
            batch: list[tuple[Completion, Job | None, int | None]] = []
            for row in conn.execute(query).all():
                job = Job.from_row(row)
                lost = ErrorSnapshot(
                    error_class="LeaseExpired",
                    message=f"lease held by {job.lease_owner} expired during attempt {job.attempt}",
                    retryable=True,
                )
                closing = Completion(
                    job.id, job.attempt, job.lease_owner or "", AttemptOutcome.LEASE_EXPIRED, lost
                )
                batch.append((closing, job, row.attempt_row_id))
            results = self._record(conn, batch, policy)
        return [
            RescuedJob(
                completion.job_id, completion.attempt, job.lease_owner, result.state, job.job_type
            )
            for (completion, job, _), result in zip(batch, results, strict=True)
            if job is not None and result.state is not None
        ]

    def release(self, worker_id: str, held: Iterable[tuple[int, int]]) -> list[CompletionResult]:
        """Give back jobs a stopping worker did not finish, without charging an attempt."""
        return self.complete(
            [
                Completion(job_id, attempt, worker_id, AttemptOutcome.RELEASED)
                for job_id, attempt in held
            ]
        )

    # -- workers -------------------------------------------------------------------------------

    def register_worker(self, worker_id: str, host: str, pid: int, job_types: list[str]) -> None:
        now = self.now_sql()
        with self.engine.begin() as conn:
            conn.execute(workers.delete().where(workers.c.id == worker_id))
            conn.execute(
                insert(workers).values(
                    id=worker_id,
                    host=host,
                    pid=pid,
                    job_types=job_types,
                    started_at=now,
                    last_heartbeat=now,
                )
            )

    def stop_worker(self, worker_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(workers).where(workers.c.id == worker_id).values(stopped_at=self.now_sql())
            )
