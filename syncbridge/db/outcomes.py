"""Reconcile's reads and writes: the finished jobs whose effect is unknown, the answer an
upstream gave for one, and when to ask again about one it could not answer for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Exists,
    Select,
    and_,
    case,
    delete,
    exists,
    or_,
    select,
    update,
)

from syncbridge.db.operator import OperatorStore
from syncbridge.db.schema import attempts, jobs, reconcile_asks, workers
from syncbridge.errors import IllegalTransition
from syncbridge.jobtypes import AppliedEffect
from syncbridge.models import Job
from syncbridge.states import (
    UNKNOWN_OUTCOMES,
    UNSUCCESSFUL_ENDS,
    EffectStatus,
    effect_answer_refusal,
)

LAST_ERROR_CHARS = 1000


def unknown_attempt_of(job_id: ColumnElement[Any]) -> Exists:
    """The job has an attempt that ended without a known outcome (an error, a lease lost, a
    timeout, a cancel during a call): its effect may or may not have been applied."""
    return exists().where(
        attempts.c.job_id == job_id, attempts.c.outcome.in_([str(o) for o in UNKNOWN_OUTCOMES])
    )


# A job reconcile is to ask about (with an attempt of unknown outcome): ended without success,
# its effect not settled. Retried (running again) or answered, it is not (INV_017).
UNANSWERED = and_(
    jobs.c.state.in_([str(s) for s in UNSUCCESSFUL_ENDS]), jobs.c.effect_status.is_(None)
)


@dataclass(frozen=True)
class NextAsk:
    """A job its upstream could not answer for: how often it was asked, and when next."""

    asks: int
    next_ask_at: datetime
    last_error: str | None


class OutcomeStore(OperatorStore):
    def unreconciled(
        self, job_types: list[str], limit: int, after_id: int = 0, settle_seconds: float = 0.0
    ) -> list[Job]:
        """Up to ``limit`` jobs to ask about, in id order after ``after_id``: terminal, not
        succeeded, with an attempt of unknown outcome, no ``effect_status`` yet, finished at
        least ``settle_seconds`` ago: an attempt given up on (its deadline, the client's timeout)
        may still have a request on its way or queued upstream. The settle time is a margin for
        it, not a bound; a reconciler whose upstream lists requests in progress also waits for
        those. Every such job, due or not (``syncbridge reconcile``); workers take theirs with
        :meth:`take_due`."""
        query = self._unreconciled(job_types, limit, after_id, settle_seconds)
        with self.reading() as conn:
            return [Job.from_row(row) for row in conn.execute(query).all()]

    def take_due(
        self,
        job_types: list[str],
        limit: int,
        after_id: int = 0,
        settle_seconds: float = 0.0,
        hold_seconds: float = 300.0,
        held_by: str | None = None,
    ) -> list[Job]:
        """As :meth:`unreconciled`, but only the jobs whose next ask is due, each taken for
        ``hold_seconds``: its next ask set that far ahead, the count unchanged (a first ask gets
        a row counting 0 asks), so that other workers' rounds leave it to this one. Without it
        every worker asked about every due job (a crash drill, two workers: 332 of 500 asks sent
        twice). The ask then sets the real next ask (:meth:`ask_again_later`, ``scheduled``) or
        the answer deletes the row; a worker that dies meanwhile leaves its jobs to the others
        once the hold has passed, or sooner: ``held_by`` names the worker, and the others'
        rescuers give back the holds of a worker that is gone (:meth:`release_orphaned_holds`).

        The jobs' rows are locked and locked ones skipped (PostgreSQL; SQLite writes one at a
        time), and a hold is written only over a row that is due as committed now, so
        concurrent rounds take different jobs."""
        not_yet = exists().where(
            reconcile_asks.c.job_id == jobs.c.id,
            reconcile_asks.c.next_ask_at > self.now_sql(),
        )
        query = self._unreconciled(job_types, limit, after_id, settle_seconds).where(~not_yet)
        if self.dialect == "postgresql":
            query = query.with_for_update(of=jobs, skip_locked=True)
        with self.engine.begin() as conn:
            due = [Job.from_row(row) for row in conn.execute(query).all()]
            if not due:
                return []
            held_until = self.now_sql(hold_seconds)
            holds = [
                {"job_id": job.id, "asks": 0, "next_ask_at": held_until, "held_by": held_by}
                for job in due
            ]
            # Only where the row, as committed now, is still due: a round that read before
            # another's holds were committed (PostgreSQL's READ COMMITTED snapshot) would
            # otherwise take those jobs too, since holding them changed no ``jobs`` row to
            # recheck (a review measured 915 of 3,000 jobs taken twice by two rounds without it).
            held = conn.execute(
                self._insert(reconcile_asks)
                .values(holds)
                .on_conflict_do_update(
                    index_elements=[reconcile_asks.c.job_id],
                    set_={"next_ask_at": held_until, "held_by": held_by},
                    where=reconcile_asks.c.next_ask_at <= self.now_sql(),
                )
                .returning(reconcile_asks.c.job_id)
            )
            taken = set(held.scalars())
        return [job for job in due if job.id in taken]

    def release_holds(self, job_ids: list[int], held_by: str | None = None) -> None:
        """Give back a round's hold (:meth:`take_due`) on jobs it did not ask about: due again at
        once (a first ask's row goes, a later one's next ask becomes now). A job answered,
        retried or pruned meanwhile has no row left to change, and one that another worker
        holds by now (this one's hold was given back as orphaned) keeps that worker's hold."""
        if not job_ids:
            return
        mine = or_(reconcile_asks.c.held_by.is_(None), reconcile_asks.c.held_by == held_by)
        with self.engine.begin() as conn:
            self._give_back(conn, and_(reconcile_asks.c.job_id.in_(job_ids), mine))

    def _give_back(self, conn: Connection, held: ColumnElement[bool]) -> int:
        """End the holds on the ``held`` rows: a first ask's row goes (it counts no ask), a
        later one's hold ends now (its next ask is due) and names nobody. Returns the rows."""
        dropped = conn.execute(delete(reconcile_asks).where(held, reconcile_asks.c.asks == 0))
        due_now = case(
            (reconcile_asks.c.next_ask_at > self.now_sql(), self.now_sql()),
            else_=reconcile_asks.c.next_ask_at,
        )
        moved = conn.execute(
            update(reconcile_asks).where(held).values(next_ask_at=due_now, held_by=None)
        )
        return dropped.rowcount + moved.rowcount

    def release_orphaned_holds(self) -> int:
        """Give back the holds of workers that are gone: stopped, or past the end of their last
        beat (``alive_until``: the beat plus that worker's own lease). Due again at once, as
        :meth:`release_holds` does; returns how many. A holder with no row or no beat yet (its
        registration failed, say) is not judged: its hold simply runs out. A worker that is
        silent only because the database was away may still be asking: another may ask the same
        question meanwhile, which changes nothing upstream; the first answer recorded stands
        (``UNANSWERED``), and the late one's hold bookkeeping leaves the new holder's alone."""
        gone = select(workers.c.id).where(
            or_(workers.c.stopped_at.is_not(None), workers.c.alive_until < self.now_sql())
        )
        orphaned = and_(reconcile_asks.c.held_by.is_not(None), reconcile_asks.c.held_by.in_(gone))
        # Read first (the partial index on held_by): most rescues find nothing, and then take
        # no write lock (SQLite) and write nothing.
        with self.reading() as conn:
            if (
                conn.execute(select(reconcile_asks.c.job_id).where(orphaned).limit(1)).first()
                is None
            ):
                return 0
        # Every orphaned row loses its holder (one whose hold already ran out too, or the read
        # above would find it again at every rescue).
        with self.engine.begin() as conn:
            return self._give_back(conn, orphaned)

    def answer_effect(self, job_id: int, status: EffectStatus) -> Job:
        """An operator's answer for a job whose effect is unknown (a record the upstream no
        longer has, a job type without a reconciler): recorded as reconcile's would be, and
        the job is no longer asked about (its next ask goes, INV_017). Refused, with nothing
        changed, for a job whose effect is known: succeeded, still to run, answered already,
        or ended by attempts whose outcomes are all known. Files no ledger row: the operator
        names no effect key."""
        with self.engine.begin() as conn:
            job = self._locked(conn, job_id)
            outcomes = conn.execute(
                select(attempts.c.outcome).where(attempts.c.job_id == job_id)
            ).scalars()
            refusal = effect_answer_refusal(job_id, job.state, job.effect_status, outcomes)
            if refusal is not None:
                raise IllegalTransition(refusal)
            conn.execute(
                update(jobs).where(jobs.c.id == job_id, UNANSWERED).values(effect_status=status)
            )
            conn.execute(delete(reconcile_asks).where(reconcile_asks.c.job_id == job_id))
            return self._get(conn, job_id)

    def _unreconciled(
        self, job_types: list[str], limit: int, after_id: int, settle_seconds: float
    ) -> Select[Any]:
        query = (
            select(jobs)
            .where(
                UNANSWERED,
                jobs.c.job_type.in_(job_types),
                jobs.c.id > after_id,
                unknown_attempt_of(jobs.c.id),
            )
            .order_by(jobs.c.id)
            .limit(limit)
        )
        if settle_seconds > 0:
            query = query.where(jobs.c.finished_at <= self.now_sql(-settle_seconds))
        return query

    def record_effect_status(
        self, job: Job, status: str, effect: AppliedEffect | None
    ) -> tuple[bool, str | None]:
        """Record the upstream's answer for ``job``: ``effect_status``, and the ledger row of
        ``effect`` (the effect it applied, if any). Returns whether this answer was recorded,
        and the status that stands (None: the job was pruned meanwhile).

        The status first, guarded: where another reconciler (a worker, the CLI) answered for
        this job meanwhile, its answer stands, and this one writes no ledger row."""
        with self.engine.begin() as conn:
            recorded = conn.execute(
                update(jobs)
                # Not answered meanwhile, nor retried (its new attempt decides then, and if it
                # fails again with an unknown outcome, it is asked about afresh).
                .where(jobs.c.id == job.id, UNANSWERED)
                .values(effect_status=status)
            ).rowcount
            conn.execute(delete(reconcile_asks).where(reconcile_asks.c.job_id == job.id))
            if not recorded:
                standing = conn.execute(
                    select(jobs.c.effect_status).where(jobs.c.id == job.id)
                ).scalar_one_or_none()
                return False, standing
            if effect is not None:
                conn.execute(
                    self._ledger_insert().values(
                        effect_key=effect.effect_key,
                        job_id=job.id,
                        lineage_id=job.effective_lineage_id,
                        upstream=effect.upstream,
                        upstream_ref=effect.upstream_ref,
                        applied_at=self.now_sql(),
                    )
                )
            return True, status

    def ask_again_later(
        self,
        job_id: int,
        error: str,
        delay_for: Callable[[int], float],
        *,
        scheduled: bool = False,
        held_by: str | None = None,
    ) -> NextAsk | None:
        """Count one more ask about a job its upstream could not answer for, and set the next:
        ``delay_for(asks)`` seconds from now, ``asks`` counting this one. ``scheduled``: the ask
        of a job taken as due (:meth:`take_due`), whose hold it replaces. An unscheduled ask
        made before the next one was due (``syncbridge reconcile`` asks every job) keeps the
        count and the schedule and records only its error, so running the command does not push
        the workers' asks later; so does a scheduled ask whose hold another worker has taken
        over by now (``held_by``: this worker; its hold was given back as orphaned). None where
        the job was answered or pruned meanwhile (nothing is recorded).

        The job's row is locked first (PostgreSQL; SQLite writes one at a time), as an answer's
        update and prune's read lock it, so neither interleaves with this."""
        last_error = error[:LAST_ERROR_CHARS]
        with self.engine.begin() as conn:
            if not self._still_unanswered(conn, job_id):
                return None
            previous = conn.execute(
                select(
                    reconcile_asks.c.asks,
                    reconcile_asks.c.next_ask_at,
                    (reconcile_asks.c.next_ask_at > self.now_sql()).label("not_due"),
                    reconcile_asks.c.held_by,
                ).where(reconcile_asks.c.job_id == job_id)
            ).one_or_none()
            taken_over = previous is not None and previous.held_by not in (None, held_by)
            if previous is not None and previous.not_due and (not scheduled or taken_over):
                conn.execute(
                    update(reconcile_asks)
                    .where(reconcile_asks.c.job_id == job_id)
                    .values(last_error=last_error)
                )
                return NextAsk(previous.asks, previous.next_ask_at, last_error)
            asks = 1 if previous is None else previous.asks + 1
            values = {
                "asks": asks,
                "next_ask_at": self.now_sql(delay_for(asks)),
                "last_error": last_error,
                "held_by": None,
            }
            statement = (
                self._insert(reconcile_asks)
                .values(job_id=job_id, **values)
                .on_conflict_do_update(index_elements=[reconcile_asks.c.job_id], set_=values)
                .returning(reconcile_asks.c.next_ask_at)
            )
            return NextAsk(asks, conn.execute(statement).scalar_one(), last_error)

    def _still_unanswered(self, conn: Connection, job_id: int) -> bool:
        """The job still ended unsuccessfully with its effect unknown: not answered, not pruned,
        not retried (running again, it is no longer reconcile's to ask about: INV_017)."""
        query = select(jobs.c.id).where(jobs.c.id == job_id, UNANSWERED)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        return conn.execute(query).one_or_none() is not None

    def effect_status_of(self, job_id: int) -> str | None:
        """The job's ``effect_status``; None also where the job no longer exists."""
        with self.reading() as conn:
            status = conn.execute(
                select(jobs.c.effect_status).where(jobs.c.id == job_id)
            ).scalar_one_or_none()
        return None if status is None else str(status)

    def next_ask(self, job_id: int) -> NextAsk | None:
        """When reconcile next asks about this job, if its upstream could not answer before."""
        with self.reading() as conn:
            row = conn.execute(
                select(
                    reconcile_asks.c.asks, reconcile_asks.c.next_ask_at, reconcile_asks.c.last_error
                ).where(reconcile_asks.c.job_id == job_id)
            ).one_or_none()
        return None if row is None else NextAsk(row.asks, row.next_ask_at, row.last_error)
