"""The worker: claims due jobs, runs their handlers on a thread pool, renews its leases,
rescues expired ones, and records every outcome through fenced writes.

Database traffic is batched (one claim, one renewal, one completion flush per tick) and runs on
the loop thread, except that on PostgreSQL the flushes run on a writer thread so that the next
claim overlaps them (``completion_writer.py``). Handlers run on ``concurrency`` pool threads
(``handler_pool.py``) and never touch the database. A database outage pauses claiming and keeps
finished outcomes in memory until the database answers again; fencing makes the late writes
safe.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from syncbridge.completion_writer import CompletionWriter
from syncbridge.config import Settings
from syncbridge.db.engine import IN_MEMORY_REFUSAL, driver_message, is_in_memory_sqlite
from syncbridge.db.notify import Listener
from syncbridge.db.queries import Store
from syncbridge.db.sqlite_watch import SqliteWatcher
from syncbridge.executor import AttemptReport, context_for, storable
from syncbridge.handler_pool import AttemptKey, HandlerPool
from syncbridge.jobtypes import JobContext, JobType
from syncbridge.logs import get_logger, lines_written_together, log_fields
from syncbridge.models import ClaimedJob, Completion, CompletionResult, ErrorSnapshot
from syncbridge.plugins import Registry
from syncbridge.reconcile import reconcile
from syncbridge.retry import RetryPolicy
from syncbridge.states import TERMINAL_STATES, AttemptOutcome, JobState

T = TypeVar("T")
WORKER_ID_MAX = 200  # workers.id, attempts.worker_id, jobs.lease_owner


def worker_id_problem(worker_id: str) -> str | None:
    """Why ``worker_id`` cannot name a worker, or None. Every lease and attempt row stores it:
    too long (or with a NUL, which PostgreSQL refuses), and registration and every claim fail."""
    if not 1 <= len(worker_id) <= WORKER_ID_MAX:
        return f"a worker id is 1 to {WORKER_ID_MAX} characters, got {len(worker_id)}"
    if any(ord(char) < 32 or ord(char) == 127 for char in worker_id):
        return "a worker id cannot hold control characters"
    return None


# Job ids named in one log line about jobs left behind at shutdown (the count is always exact).
MAX_IDS_LOGGED = 50
RECONCILE_BATCH = 50  # jobs asked about per reconcile round


@dataclass
class InFlight:
    job: ClaimedJob
    ctx: JobContext
    started: float
    deadline: float


@dataclass
class WorkerStats:
    claimed: int = 0
    completed: int = 0
    leases_lost: int = 0
    rescued: int = 0
    released: int = 0
    timeouts: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class Worker:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        settings: Settings,
        *,
        concurrency: int = 10,
        job_types: list[str] | None = None,
        worker_id: str | None = None,
        burst: bool = False,
        upstreams: Mapping[str, Any] | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if is_in_memory_sqlite(store.engine.url):
            # Its one shared connection cannot keep the worker's transactions apart from the
            # reads and writes of anything else in the process (scrapes, the API, a test).
            raise ValueError(IN_MEMORY_REFUSAL)
        self.store = store
        self.settings = settings
        self.concurrency = concurrency
        self.burst = burst
        if worker_id is not None and (problem := worker_id_problem(worker_id)) is not None:
            raise ValueError(problem)
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        names = job_types or sorted(registry.job_types)
        self.job_types: dict[str, JobType] = {name: registry.get(name) for name in names}
        self.upstreams = upstreams or {}
        self.on_event = on_event
        self.stats = WorkerStats()
        self.policy = RetryPolicy(
            settings.job_backoff_seconds_base, settings.job_backoff_seconds_cap
        )
        self.log = get_logger(worker_id=self.worker_id)
        self._handler_log = get_logger()  # handlers' context is bound per attempt (executor)
        # Per-job debug events cost a dict each even when filtered: build them only if someone
        # listens (debug logs, or the metrics hooks).
        self._per_job_debug = on_event is not None or self.log.is_enabled_for(logging.DEBUG)
        self._wake = threading.Event()
        self._pool = HandlerPool(concurrency, self._wake.set)
        # By attempt, not job: should this worker ever hold two attempts of one job (isolation
        # keeps a job that lost its lease from running beside others), both stay tracked.
        self._in_flight: dict[AttemptKey, InFlight] = {}
        # Attempts given up on (timed out, or left at shutdown) whose thread still runs.
        self._zombies: set[AttemptKey] = set()
        self._pending: list[Completion] = []
        self._stop = threading.Event()
        self._stop_signalled = False  # set by a signal handler: no lock may be taken there
        self._db_down_since: float | None = None
        # The loop and the outcome writer both run store calls: the lost/reconnected
        # transition is taken under this lock, so one outage is logged once.
        self._db_state = threading.Lock()
        self._isolated_waiting = False  # one is due: let in-flight jobs drain, then run it
        self._isolated_pending = True  # one may exist: probe for it whenever idle
        self._listener: Listener | SqliteWatcher | None = None
        self._writer: CompletionWriter | None = None
        lease = settings.job_lease_seconds
        self._renew_every = lease / 3
        self._next_renew = 0.0
        self._next_rescue = 0.0
        self._next_reconcile = time.monotonic() + settings.reconcile_interval_seconds
        self._reconcile_after = 0  # where the next round goes on (0: from the start)
        self._next_prune = time.monotonic() + settings.prune_interval_seconds
        self._background: dict[str, threading.Thread] = {}

    # -- public --------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Claim nothing more; finish in-flight jobs within the grace period. For other threads:
        a signal handler calls :meth:`request_stop_from_signal`."""
        self._stop.set()
        self._wake.set()

    def request_stop_from_signal(self) -> None:
        """:meth:`request_stop` for a signal handler. Python runs a handler on the main thread,
        which is the loop's, between two bytecodes: possibly inside ``_wake``'s ``wait``,
        ``set`` or ``clear``, while the loop holds the event's lock. Taking that lock again
        there would hang the worker for good (FM_028), so only a plain flag is set here; the
        loop turns it into a stop within one poll interval."""
        self._stop_signalled = True

    @property
    def stuck_threads(self) -> int:
        return len(self._zombies)

    def run(self) -> None:
        self._db(
            lambda: self.store.register_worker(
                self.worker_id, socket.gethostname(), os.getpid(), sorted(self.job_types)
            )
        )
        self._emit("worker_started", concurrency=self.concurrency, job_types=sorted(self.job_types))
        if self.store.dialect == "postgresql":
            self._listener = Listener(
                self.store.engine.url,
                set(self.job_types),
                self._wake.set,
                lambda error: self._emit("listen_failed", level="warning", error=error),
            )
            self._listener.start()
        elif self.store.dialect == "sqlite":
            # No NOTIFY on SQLite: a watcher polls the file's data version, fast after a commit
            # and backing off while nothing changes.
            self._listener = SqliteWatcher(
                self.store.engine.url,
                self._wake.set,
                lambda error: self._emit("watch_failed", level="warning", error=error),
                fastest=self.settings.sqlite_poll_fastest_seconds,
                slowest=self.settings.sqlite_poll_slowest_seconds,
            )
            self._listener.start()
        if self.store.dialect == "postgresql":
            # Outcomes are written on a thread of their own while this one claims. Not on
            # SQLite: its single writer lock would only make the two wait for each other.
            self._writer = CompletionWriter(
                lambda batch: self._db(lambda: self._complete(batch)),
                self._wake.set,
                self.settings.poll_interval_seconds,
            )
        grace_deadline: float | None = None
        try:
            while True:
                if self._stop_signalled and not self._stop.is_set():
                    self._stop.set()  # here, on the loop thread, outside any lock
                self.tick()
                if self._stop.is_set():
                    if grace_deadline is None:
                        grace_deadline = time.monotonic() + self.settings.shutdown_grace_seconds
                        self._emit("worker_stopping", in_flight=len(self._in_flight))
                    if not self._in_flight and not self._unwritten:
                        break
                    if time.monotonic() >= grace_deadline:
                        break
                elif self.burst and self._burst_done():
                    break
                self._wake.wait(self.settings.poll_interval_seconds)
                self._wake.clear()
        finally:
            if grace_deadline is None:  # the loop ended without a stop (burst, or an error)
                grace_deadline = time.monotonic() + self.settings.shutdown_grace_seconds
            self._shutdown(grace_deadline)

    def tick(self) -> None:
        """One round: collect outcomes, enforce timeouts, claim, flush, renew, rescue."""
        with lines_written_together():  # no I/O but the log lines: one write for them all
            self._collect()
            self._enforce_timeouts()
        if not self._stop.is_set():
            self._claim()  # first: a job that just arrived starts before the bookkeeping
        self._flush()
        now = time.monotonic()
        if now >= self._next_renew:
            self._renew()
            self._next_renew = now + self._renew_every
        if now >= self._next_rescue:
            self._rescue()
            self._next_rescue = now + self.settings.rescue_interval_seconds
        if now >= self._next_reconcile:
            self._reconcile()
            self._next_reconcile = now + self.settings.reconcile_interval_seconds
        if now >= self._next_prune:
            self._prune()
            self._next_prune = now + self.settings.prune_interval_seconds

    # -- the steps -----------------------------------------------------------------------------

    def _claim(self) -> None:
        free = self.concurrency - len(self._in_flight) - self.stuck_threads
        if free <= 0 or self._db_down_since is not None:
            return
        if any(item.job.isolate for item in self._in_flight.values()):
            return  # an isolated job runs alone
        types = sorted(self.job_types)
        lease = self.settings.job_lease_seconds
        claimed: list[ClaimedJob] | None = []
        sent = time.monotonic()  # the leases it takes run from no earlier than this
        if not self._in_flight and self._isolated_pending:
            claimed = self._db(
                lambda: self.store.claim_to_run(self.worker_id, types, 1, lease, True)
            )
            self._isolated_waiting = False
        if not claimed and not self._isolated_waiting:
            claimed = self._db(lambda: self.store.claim_to_run(self.worker_id, types, free, lease))
        for job in claimed or []:
            self._start(job, lease_held_until=sent + lease)
        if claimed and len(claimed) >= free:
            self._wake.set()  # a full batch: more may be due, claim again without waiting

    def _start(self, job: ClaimedJob, lease_held_until: float) -> None:
        job_type = self.job_types[job.job_type]
        timeout = (
            job.timeout_seconds or job_type.timeout_seconds or (self.settings.job_timeout_seconds)
        )
        started = time.monotonic()
        deadline = job.updated_at + timedelta(seconds=timeout)
        ctx = context_for(job, self.worker_id, deadline, self._handler_log, self.upstreams)
        ctx.lease_held_until = lease_held_until
        self._in_flight[(job.id, job.attempt)] = InFlight(job, ctx, started, started + timeout)
        self._pool.submit((job.id, job.attempt), job_type, ctx)
        self.stats.claimed += 1
        if self._per_job_debug:
            self._emit_fields("attempt_started", "debug", self._job_fields(job))

    def _collect(self) -> None:
        for key, report in self._pool.finished():
            item = self._in_flight.pop(key, None)
            if item is not None:
                self._finish(item, report)
            else:  # a late report of an attempt given up on: its outcome was recorded then
                self._zombies.discard(key)

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for key, item in list(self._in_flight.items()):
            if now < item.deadline:
                continue
            # The thread cannot be killed: ask it to stop, stop renewing its lease, and record
            # the attempt as timed out. Its late result is fenced out.
            del self._in_flight[key]
            item.ctx.request_stop("timeout")
            self._zombies.add(key)
            self.stats.timeouts += 1
            error = ErrorSnapshot(
                error_class="AttemptTimeout",
                message=f"attempt ran longer than {item.deadline - item.started:.3g}s",
                retryable=True,
            )
            self._finish(item, AttemptReport(AttemptOutcome.TIMEOUT, error))

    def _finish(self, item: InFlight, report: AttemptReport) -> None:
        job = item.job
        outcome, error = report.outcome, report.error
        self._pending.append(
            Completion(
                job.id,
                job.attempt,
                self.worker_id,
                outcome,
                error,
                report.effect,
                report.also_applied,
            )
        )
        # Once per attempt: one dict, handed on as it is (not merged again through **fields).
        fields = self._job_fields(job)
        fields["outcome"] = str(outcome)
        fields["duration_ms"] = round((time.monotonic() - item.started) * 1000, 3)
        fields["error_class"] = error.error_class if error else None
        fields["error_message"] = error.message if error else None
        self._emit_fields("attempt_finished", "info", fields)

    @property
    def _unwritten(self) -> bool:
        """Outcomes not recorded yet (or recorded, but not yet counted here)."""
        return bool(self._pending) or (self._writer is not None and self._writer.outstanding > 0)

    def _flush(self) -> None:
        if self._writer is not None:
            self._writer.submit(self._pending)
            self._pending = []
            self._count_results(self._writer.take_results())
            return
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        results = self._db(lambda: self._complete(batch))
        if results is None:
            self._pending = batch + self._pending  # keep them until the database answers
            return
        self._count_results(results)

    def _complete(self, batch: list[Completion]) -> list[CompletionResult]:
        """Record a batch of outcomes. A connection error is an outage (``_db``: the batch is
        kept and written when the database answers). Any other database error means one
        outcome in the batch cannot be stored (FM_029): written one by one, the others land, and
        the one that cannot is recorded as a retryable error naming why, so that its job runs
        again instead of waiting out its lease behind a batch that never lands."""
        try:
            return self.store.complete(batch, self.policy)
        except DBAPIError as exc:
            if is_connection_error(exc):
                raise
        results: list[CompletionResult] = []
        for completion in batch:
            try:
                results += self.store.complete([completion], self.policy)
            except DBAPIError as exc:
                if is_connection_error(exc):
                    raise  # those written so far come back as already written: fenced
                results += self._record_unstorable(completion, exc)
        return results

    def _record_unstorable(self, completion: Completion, exc: DBAPIError) -> list[CompletionResult]:
        reason = storable(driver_message(exc), 300)
        self._emit(
            "outcome_unstorable",
            level="error",
            job_id=completion.job_id,
            attempt=completion.attempt,
            outcome=str(completion.outcome),
            error=reason,
        )
        error = ErrorSnapshot(
            error_class="UnstorableOutcome",
            message=f"the attempt's {completion.outcome} outcome could not be stored: {reason}",
            retryable=True,
        )
        instead = Completion(
            completion.job_id,
            completion.attempt,
            completion.worker_id,
            AttemptOutcome.ERROR,
            error=error,
        )
        try:
            return self.store.complete([instead], self.policy)
        except DBAPIError as again:
            if is_connection_error(again):
                raise
            return []  # not even that: its lease runs out and the rescuer takes it back

    def _count_results(self, results: list[CompletionResult]) -> None:
        for result in results:
            self.stats.completed += 1
            if not result.applied:
                self.stats.leases_lost += 1
                self._emit(
                    "lease_lost", job_id=result.job_id, attempt=result.attempt, level="warning"
                )
            else:
                state = str(result.state)
                self.stats.outcomes[state] = self.stats.outcomes.get(state, 0) + 1
                if not self._per_job_debug:
                    continue
                fields = {
                    "job_id": result.job_id,
                    "attempt": result.attempt,
                    "state": state,
                    "follow_up_job_id": result.follow_up_job_id,
                }
                self._emit_fields("job_state", "debug", fields)

    def _renew(self) -> None:
        held = list(self._in_flight)
        lease = self.settings.job_lease_seconds
        sent = time.monotonic()
        result = self._db(lambda: self.store.renew(self.worker_id, held, lease))
        if result is None:
            return
        for (job_id, _), item in list(self._in_flight.items()):
            if job_id in result.lost:
                item.ctx.request_stop("lease lost")
            elif job_id in result.cancel_requested:
                item.ctx.request_stop("cancel requested")
            if job_id not in result.lost:  # renewed: held until ``lease`` after it was sent
                item.ctx.lease_held_until = sent + lease

    def _rescue(self) -> None:
        rescued = self._db(lambda: self.store.rescue(self.policy))
        if rescued:
            self.stats.rescued += len(rescued)
            finished: dict[str, dict[str, int]] = {}
            for r in rescued:
                if r.state in TERMINAL_STATES:  # a job that died with its lease
                    by_type = finished.setdefault(r.job_type, {})
                    by_type[str(r.state)] = by_type.get(str(r.state), 0) + 1
            self._emit(
                "jobs_recovered",
                count=len(rescued),
                by_state=dict(Counter(str(r.state) for r in rescued)),
                finished_by_type=finished,
                jobs=[(r.job_id, str(r.state)) for r in rescued[:20]],
            )
        # Reconcile holds of a worker that is gone (killed mid-round): due again now, not when
        # the five-minute hold ends.
        released = self._db(self.store.release_orphaned_holds)
        if released:
            self._emit("reconcile_holds_released", count=released)
        types = sorted(self.job_types)
        pending = self._db(lambda: self.store.isolated_pending(types))
        self._isolated_pending = pending is not False or any(
            r.state is JobState.PENDING for r in rescued or []
        )
        if self._in_flight and self._isolated_pending:
            waiting = self._db(lambda: self.store.isolated_due(types))
            self._isolated_waiting = bool(waiting)

    def _reconcile(self) -> None:
        """Converge unknown outcomes in the background: it asks upstreams, which must not hold
        up lease renewals on this thread."""
        if not any(t.reconcile for t in self.job_types.values()):
            return
        registry = Registry(job_types=dict(self.job_types))

        def run() -> None:
            try:
                results = reconcile(
                    self.store,
                    registry,
                    self.upstreams,
                    RECONCILE_BATCH,
                    self.worker_id,
                    after_id=self._reconcile_after,
                    settle_seconds=self.settings.reconcile_settle_seconds,
                    due_only=True,
                    stop_requested=self._stop.is_set,
                )
            except DBAPIError as exc:
                self._emit("reconcile_failed", level="warning", error=str(exc.orig or exc)[:200])
                return
            # A full batch: the next round goes on after it, so that jobs whose upstream keeps
            # failing do not take every round's batch; a short one: start again from the top.
            full = len(results) == RECONCILE_BATCH
            self._reconcile_after = results[-1].job_id if full else 0
            if results:
                settled = sum(1 for r in results if r.effect_status)
                self._emit("effects_reconciled", count=len(results), settled=settled)

        self._in_background("reconcile", run)

    def _prune(self) -> None:
        """Retention: delete finished jobs older than ``retention_seconds`` (``prune`` keeps
        what idempotency keys, the ledger and replay links need), in the background."""
        retention = self.settings.retention_seconds
        if retention is None:
            return

        def run() -> None:
            cutoff = self.store.clock.now() - timedelta(seconds=retention)
            try:
                deleted = self.store.prune(cutoff)
            except DBAPIError as exc:
                self._emit("prune_failed", level="warning", error=str(exc.orig or exc)[:200])
                return
            self._emit("jobs_pruned", count=deleted, finished_before=cutoff.isoformat())

        self._in_background("prune", run)

    def _in_background(self, name: str, work: Callable[[], None]) -> None:
        """Run ``work`` on a thread of its own unless the last run of ``name`` still goes:
        slow housekeeping must not hold up lease renewals on this thread."""
        running = self._background.get(name)
        if running is not None and running.is_alive():
            return
        thread = threading.Thread(target=work, name=f"syncbridge-{name}", daemon=True)
        self._background[name] = thread
        thread.start()

    def _burst_done(self) -> bool:
        if self._in_flight or self._unwritten:
            return False
        runnable = self._db(lambda: self.store.has_runnable(sorted(self.job_types)))
        return runnable is False

    def _shutdown(self, deadline: float) -> None:
        """Release what is still running, write the outcomes held, and say what could not be
        done by ``deadline`` (monotonic; the end of the grace period the loop began)."""
        self._collect()
        self._flush()
        held = list(self._in_flight)
        never_started = set(self._pool.shutdown())
        released: list[Any] | None = []
        if held:
            for key, item in self._in_flight.items():
                item.ctx.request_stop("worker shutting down")
                if key not in never_started:
                    self._zombies.add(key)
            self._in_flight.clear()
            released = self._db(lambda: self.store.release(self.worker_id, held))
        unwritten = self._write_before_stopping(deadline)
        self._finish_reconcile(deadline)
        if released is None:  # the database was away: it may be back after the writes
            released = self._db(lambda: self.store.release(self.worker_id, held))
        if released is None:
            self._left_behind("jobs_not_released", [job_id for job_id, _ in held], "they")
        elif held:
            self.stats.released += len(released)
            # What the release changed: a job whose lease was already lost is not counted.
            self._emit("jobs_released", count=len(released))
        if unwritten:
            self._left_behind("outcomes_unwritten", [c.job_id for c in unwritten], "their jobs")
        self._db(lambda: self.store.stop_worker(self.worker_id))
        if self._listener is not None:
            self._listener.stop()
        self._emit(
            "worker_stopped",
            claimed=self.stats.claimed,
            completed=self.stats.completed,
            leases_lost=self.stats.leases_lost,
            rescued=self.stats.rescued,
            released=self.stats.released,
            stuck_threads=self.stuck_threads,
        )

    def _finish_reconcile(self, deadline: float) -> None:
        """Let a reconcile round that is asking finish its ask (it stops before the next one and
        gives back the rest of its hold) within the grace period: the process ending mid-ask
        would drop the answer and leave the job held for five minutes (a drill saw it)."""
        round_ = self._background.get("reconcile")
        if round_ is not None and round_.is_alive():
            round_.join(max(0.0, deadline - time.monotonic()))
            if round_.is_alive():
                self._emit("reconcile_round_unfinished", level="warning")

    def _left_behind(self, event: str, job_ids: list[int], who: str) -> None:
        """An error line naming what a stop could not do (the count exact, some of the ids)."""
        self._emit(
            event,
            level="error",
            count=len(job_ids),
            job_ids=job_ids[:MAX_IDS_LOGGED],
            consequence=f"{who} run again once their leases expire, charged an attempt",
        )

    def _write_before_stopping(self, deadline: float) -> list[Completion]:
        """Write the outcomes still held, trying again while the database is away until
        ``deadline`` (at least one try); returns those that could not be written. Never
        dropped silently: a job whose success is not written runs again (the upstream answers
        it from its key)."""
        if self._writer is not None:
            self._writer.stop(max(deadline - time.monotonic(), self.settings.poll_interval_seconds))
            self._count_results(self._writer.take_results())
            return self._writer.unwritten()
        while self._pending and time.monotonic() < deadline:
            time.sleep(
                max(0.0, min(self.settings.poll_interval_seconds, deadline - time.monotonic()))
            )
            self._flush()
        return list(self._pending)

    # -- helpers -------------------------------------------------------------------------------

    def _db(self, operation: Callable[[], T]) -> T | None:
        """Run a store call; on a lost database log once, return None, and carry on. Only a
        call sent after the loss was noticed shows that the database is back: one already on
        its way (the loop's claim while the writer's flush failed) may still get its answer.
        The lost and reconnected events are emitted under the transition's lock, so that they
        come out in the order of the transitions (the ``database_up`` gauge follows them)."""
        sent = time.monotonic()
        try:
            value = operation()
        except DBAPIError as exc:
            with self._db_state:
                if self._db_down_since is None:
                    self._db_down_since = time.monotonic()
                    self._emit("database_lost", error=driver_message(exc)[:300], level="error")
            return None
        if self._db_down_since is not None:
            with self._db_state:
                down_since = self._db_down_since
                if down_since is not None and sent >= down_since:
                    self._db_down_since = None
                    down_for = time.monotonic() - down_since
                    self._emit("database_reconnected", down_seconds=round(down_for, 3))
        return value

    @staticmethod
    def _job_fields(job: ClaimedJob) -> dict[str, Any]:
        return {
            "job_id": job.id,
            "job_type": job.job_type,
            "entity_id": job.entity_id,
            "attempt": job.attempt,
            "correlation_id": job.correlation_id,
        }

    def _emit(self, event: str, level: str = "info", **fields: Any) -> None:
        self._emit_fields(event, level, fields)

    def _emit_fields(self, event: str, level: str, fields: dict[str, Any]) -> None:
        log_fields(self.log, level, event, fields)
        if self.on_event is not None:
            self.on_event(event, fields)


def is_connection_error(exc: DBAPIError) -> bool:
    """An error of the connection or the server's state (an outage, a restart, a deadlock, a
    serialization failure): worth trying the same statement again later. Data, integrity and
    programming errors are not: the same statement fails again."""
    return exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))
