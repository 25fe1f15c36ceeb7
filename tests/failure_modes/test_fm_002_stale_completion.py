"""FM_002: a worker whose lease expired completes after another worker took the job over.

Unsafe variant: a completion that finds the job by id alone (no attempt, state or owner fence).
Prevention: ``LifecycleStore._fenced`` (one locked read of every completion's fence) and the
fenced ``UPDATE`` of ``LifecycleStore._write_transition``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from syncbridge.clock import FakeClock
from syncbridge.db.queries import Store
from syncbridge.db.schema import jobs
from syncbridge.jobtypes import AppliedEffect
from syncbridge.models import Completion, Job
from syncbridge.states import AttemptOutcome, JobState
from tests.failure_modes.support import request, violations

OLD, NEW = "worker-old", "worker-new"


class UnfencedStore(Store):
    """Unsafe: completes whatever attempt the job is on now, whoever holds it."""

    def _fenced(
        self, conn: Connection, completions: Sequence[Completion]
    ) -> list[tuple[Completion, Job | None, int | None]]:
        found = []
        for completion in completions:
            row = conn.execute(
                self._running_with_attempt().where(jobs.c.id == completion.job_id)
            ).one_or_none()
            found.append(
                (completion, *((Job.from_row(row), row.attempt_row_id) if row else (None, None)))
            )
        return found


def succeed(job: Job, worker: str, key: str) -> Completion:
    effect = AppliedEffect(key, "billing", f"inv-{key}")
    return Completion(job.id, job.attempt, worker, AttemptOutcome.SUCCEEDED, effect=effect)


def take_over(store: Store, clock: FakeClock) -> tuple[Job, Job]:
    """OLD claims and stalls past its lease; the rescuer returns the job; NEW claims it."""
    store.enqueue(request("invoice-7", max_retries=3))
    [old] = store.claim(OLD, ["noop"], 1, lease_seconds=10)
    clock.advance(11)
    [rescued] = store.rescue()
    assert rescued.job_id == old.id and rescued.state is JobState.PENDING
    clock.advance(3600)  # past the backoff; it lost a lease, so it runs alone
    [new] = store.claim(NEW, ["noop"], 1, lease_seconds=60, isolated=True)
    assert new.id == old.id and new.attempt == old.attempt + 1
    return old, new


def test_repro_unfenced_stale_completion_overwrites_the_new_attempt(
    store: Store, clock: FakeClock
) -> None:
    unsafe = UnfencedStore(store.engine, clock)
    old, new = take_over(unsafe, clock)

    [late] = unsafe.complete([succeed(old, OLD, "stale-v1")])
    assert late.applied  # the fenced-out worker wrote
    job = unsafe.get_job(old.id)
    assert job.state is JobState.SUCCEEDED  # while NEW's handler is still running
    attempts = unsafe.attempts_of(old.id)
    assert [(a.worker_id, a.outcome) for a in attempts] == [
        (OLD, "lease_expired"),
        (NEW, "succeeded"),  # NEW's attempt, closed by OLD's report
    ]
    assert [row["effect_key"] for row in unsafe.ledger_rows()] == ["stale-v1"]

    [fresh] = unsafe.complete([succeed(new, NEW, "fresh-v2")])
    assert not fresh.applied  # the newer result is the one refused
    assert [row["effect_key"] for row in unsafe.ledger_rows()] == ["stale-v1"]


def test_prevented_stale_completion_changes_nothing(store: Store, clock: FakeClock) -> None:
    old, new = take_over(store, clock)
    before = store.get_job(old.id)

    [late] = store.complete([succeed(old, OLD, "stale-v1")])
    assert not late.applied
    assert store.get_job(old.id) == before  # not one column changed
    assert [a.outcome for a in store.attempts_of(old.id)] == ["lease_expired", "running"]
    assert store.ledger_rows() == []
    renewal = store.renew(OLD, [(old.id, old.attempt)], 60)
    assert renewal.lost == {old.id} and not renewal.renewed
    # A stale failure report is refused just the same.
    [late_failure] = store.complete([Completion(old.id, old.attempt, OLD, AttemptOutcome.FAILED)])
    assert not late_failure.applied
    assert violations(store) == {}

    [fresh] = store.complete([succeed(new, NEW, "fresh-v2")])
    assert fresh.applied and fresh.state is JobState.SUCCEEDED
    assert [(r["effect_key"], r["job_id"]) for r in store.ledger_rows()] == [("fresh-v2", old.id)]
    assert [(a.worker_id, a.outcome) for a in store.attempts_of(old.id)] == [
        (OLD, "lease_expired"),
        (NEW, "succeeded"),
    ]
    assert violations(store) == {}
