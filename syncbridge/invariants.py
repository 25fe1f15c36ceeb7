"""The invariants of docs/invariants.md, checked on a live database (``syncbridge check``).

Each check is one query that counts violating rows; zero means the invariant holds. The store
makes most of them impossible by construction (indexes, fenced writes): these checks are how a
drill, an operator or a test proves it after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, cast, exists, func, literal, or_, select
from sqlalchemy.types import Text

from syncbridge.db.outcomes import UNANSWERED
from syncbridge.db.queries import Store
from syncbridge.db.schema import (
    attempts,
    idempotency_keys,
    jobs,
    ledger,
    reconcile_asks,
    workers,
)
from syncbridge.jobtypes import effect_key_lineage
from syncbridge.states import ACTIVE_STATES, TERMINAL_STATES, JobState

ACTIVE = [str(s) for s in ACTIVE_STATES]
TERMINAL = [str(s) for s in TERMINAL_STATES]


@dataclass(frozen=True)
class CheckResult:
    code: str
    title: str
    violations: int
    examples: list[Any]

    @property
    def ok(self) -> bool:
        return self.violations == 0


def run_checks(store: Store, lease_grace_seconds: float = 30.0) -> list[CheckResult]:
    """Every invariant, in order. ``lease_grace_seconds``: how long past its expiry a lease may
    stay unrecovered while a worker is alive (rescue interval plus slack)."""
    now = store.clock.now()
    grace = timedelta(seconds=lease_grace_seconds)
    original = jobs.alias()
    checks: list[tuple[str, str, Any]] = [
        (
            "INV_001",
            "no accepted job is lost: every job is in a known state, running ones are leased",
            select(jobs.c.id).where(
                or_(
                    jobs.c.state.not_in([str(s) for s in JobState]),
                    and_(
                        jobs.c.state == JobState.RUNNING,
                        or_(jobs.c.lease_owner.is_(None), jobs.c.lease_expires_at.is_(None)),
                    ),
                )
            ),
        ),
        (
            "INV_002",
            "each applied effect has exactly one ledger row (effect keys are unique)",
            select(ledger.c.effect_key).group_by(ledger.c.effect_key).having(func.count() > 1),
        ),
        (
            "INV_003",
            "ledger rows belong to succeeded jobs or reconciled ones (fenced-out writes: none)",
            # One violation per job, however many effects it filed.
            select(ledger.c.job_id)
            .distinct()
            .join(jobs, jobs.c.id == ledger.c.job_id)
            .where(
                jobs.c.state != JobState.SUCCEEDED,
                func.coalesce(jobs.c.effect_status, "") != "applied",
            ),
        ),
        (
            "INV_004",
            "attempts since enqueue or the last manual retry <= max_retries + 1",
            select(jobs.c.id)
            .join(attempts, attempts.c.job_id == jobs.c.id)
            .where(attempts.c.number > jobs.c.budget_start, attempts.c.outcome != "released")
            .group_by(jobs.c.id, jobs.c.max_retries)
            .having(func.count() > jobs.c.max_retries + 1),
        ),
        (
            "INV_005",
            "no expired lease stays unrecovered while a worker is alive",
            select(jobs.c.id).where(
                jobs.c.state == JobState.RUNNING,
                jobs.c.lease_expires_at < now - grace,
                exists().where(
                    workers.c.stopped_at.is_(None), workers.c.last_heartbeat > now - grace
                ),
            ),
        ),
        (
            "INV_006",
            "at most one active job per (job_type, entity_id)",
            select(jobs.c.job_type, jobs.c.entity_id)
            .where(jobs.c.state.in_(ACTIVE))
            .group_by(jobs.c.job_type, jobs.c.entity_id)
            .having(func.count() > 1),
        ),
        (
            "INV_007",
            "at most one running attempt per job, and only the current one of a running job",
            select(attempts.c.job_id)
            .join(jobs, jobs.c.id == attempts.c.job_id)
            .where(
                attempts.c.outcome == "running",
                or_(jobs.c.state != JobState.RUNNING, attempts.c.number != jobs.c.attempt),
            ),
        ),
        (
            "INV_008",
            "no follow-up is lost: a finished job has no unconsumed follow-up",
            select(jobs.c.id).where(jobs.c.state.in_(TERMINAL), jobs.c.follow_up.is_(True)),
        ),
        (
            "INV_009",
            "attempt numbers run 1..attempt without gaps (every claim left its row)",
            select(jobs.c.id)
            .outerjoin(attempts, attempts.c.job_id == jobs.c.id)
            .group_by(jobs.c.id, jobs.c.attempt)
            .having(
                or_(
                    func.count(attempts.c.id) != jobs.c.attempt,
                    func.coalesce(func.max(attempts.c.number), 0) != jobs.c.attempt,
                )
            ),
        ),
        (
            "INV_010",
            "terminal jobs are finished and hold no lease",
            select(jobs.c.id).where(
                jobs.c.state.in_(TERMINAL),
                or_(jobs.c.finished_at.is_(None), jobs.c.lease_owner.is_not(None)),
            ),
        ),
        (
            "INV_011",
            "replays share their original's lineage, type and entity",
            select(jobs.c.id)
            .join(original, original.c.id == jobs.c.replay_of_job_id)
            .where(
                or_(
                    original.c.job_type != jobs.c.job_type,
                    original.c.entity_id != jobs.c.entity_id,
                    func.coalesce(original.c.lineage_id, original.c.id) != jobs.c.lineage_id,
                )
            ),
        ),
        (
            "INV_015",
            "each job's own idempotency key is recorded as answering with that job",
            select(jobs.c.id).where(
                jobs.c.idempotency_key.is_not(None),
                ~exists().where(
                    idempotency_keys.c.key == jobs.c.idempotency_key,
                    idempotency_keys.c.job_id == jobs.c.id,
                ),
            ),
        ),
        (
            "INV_017",
            "reconcile asks again only about jobs whose effect is still unknown",
            select(reconcile_asks.c.job_id)
            .join(jobs, jobs.c.id == reconcile_asks.c.job_id)
            .where(~UNANSWERED),
        ),
    ]
    results: list[CheckResult] = []
    with store.reading() as conn:
        for code, title, query in checks:
            rows = conn.execute(query).all()
            results.append(CheckResult(code, title, len(rows), [tuple(r) for r in rows[:5]]))
        # INV_016: SQL narrows the ledger to rows whose key does not start with their own
        # lineage's prefix (none, in a healthy ledger); Python reads the lineage out of those.
        own_prefix = literal("sb-") + cast(ledger.c.lineage_id, Text) + literal("-%")
        suspects = select(ledger.c.effect_key, ledger.c.job_id, ledger.c.lineage_id).where(
            ledger.c.effect_key.like("sb-%"), ~ledger.c.effect_key.like(own_prefix)
        )
        misfiled = [
            tuple(row)
            for row in conn.execute(suspects)
            if effect_key_lineage(row.effect_key) not in (None, row.lineage_id)
        ]
        title = "an effect is filed under the lineage whose request made it (its key's)"
        results.append(CheckResult("INV_016", title, len(misfiled), misfiled[:5]))
    return results
