"""FM_006: a poison job kills its worker every time it runs, with the jobs claimed beside it.

Unsafe variant: a rescue that does not isolate what it recovers, so the poison job and its
neighbours come back as one batch and share its fate. Prevention: a lost lease marks the job
``isolate`` (``transitions.decide``); isolated jobs are claimed alone (``LifecycleStore.claim``
with ``isolated=True``, ``Worker._claim``): the poison job burns only its own budget and ends
``dead``; each neighbour loses one attempt and then succeeds; other jobs keep flowing.

The worker's claim rule is driven by hand against the injected clock: a batch that holds the
poison job dies with it (the lease runs out and the rescuer returns the batch).
"""

from __future__ import annotations

from syncbridge.clock import FakeClock
from syncbridge.db.lifecycle import DEFAULT_POLICY
from syncbridge.db.queries import Store
from syncbridge.db.schema import jobs
from syncbridge.models import Completion, RescuedJob
from syncbridge.retry import RetryPolicy
from syncbridge.states import AttemptOutcome, JobState
from tests.failure_modes.support import request, violations

MAX_RETRIES = 2
LEASE = 30.0
BATCH = 10


class UnisolatedRescueStore(Store):
    """Unsafe: rescued jobs go back to the common queue, to be claimed together again."""

    def rescue(self, policy: RetryPolicy = DEFAULT_POLICY, limit: int = 500) -> list[RescuedJob]:
        rescued = super().rescue(policy, limit)
        with self.engine.begin() as conn:
            ids = [r.job_id for r in rescued]
            conn.execute(jobs.update().where(jobs.c.id.in_(ids)).values(isolate=False))
        return rescued


def run_rounds(store: Store, clock: FakeClock, poison: int, rounds: int) -> int:
    """Each round: an idle worker claims an isolated job alone if one is due (as ``Worker._claim``
    does), else a batch; one fresh job arrives too. Returns how many fresh jobs were enqueued."""
    for n in range(rounds):
        store.enqueue(request(f"fresh-{n}", max_retries=MAX_RETRIES))
        batch = store.claim("w", ["noop"], 1, LEASE, isolated=True)
        if not batch:
            batch = store.claim("w", ["noop"], BATCH, LEASE)
        if any(job.id == poison for job in batch):
            clock.advance(LEASE + 1)  # the worker died with the whole batch
            store.rescue()
        else:
            done = [Completion(j.id, j.attempt, "w", AttemptOutcome.SUCCEEDED) for j in batch]
            store.complete(done)
        clock.advance(60)  # past any backoff: everything rescued is due again
    return rounds


def start(store: Store) -> tuple[int, list[int]]:
    poison = store.enqueue(request("poison", payload={"crash": True}, max_retries=MAX_RETRIES))
    neighbours = [store.enqueue(request(f"n{n}", max_retries=MAX_RETRIES)) for n in range(3)]
    return poison.job.id, [r.job.id for r in neighbours]


def test_repro_unisolated_rescue_sends_the_neighbours_dead(clock: FakeClock, store: Store) -> None:
    unsafe = UnisolatedRescueStore(store.engine, clock)
    poison, neighbours = start(unsafe)
    run_rounds(unsafe, clock, poison, rounds=MAX_RETRIES + 1)
    assert unsafe.get_job(poison).state is JobState.DEAD
    for job_id in neighbours:  # healthy jobs in the dead-letter queue, blamed for its crash
        job = unsafe.get_job(job_id)
        assert job.state is JobState.DEAD and job.attempt == MAX_RETRIES + 1
        assert {a.outcome for a in unsafe.attempts_of(job_id)} == {"lease_expired"}
    assert violations(unsafe) == {}  # every check passes: only this test shows the harm


def test_prevented_isolation_sends_only_the_poison_job_dead(clock: FakeClock, store: Store) -> None:
    poison, neighbours = start(store)
    fresh = run_rounds(store, clock, poison, rounds=12)
    dead = store.get_job(poison)
    assert dead.state is JobState.DEAD and dead.attempt == MAX_RETRIES + 1
    assert {a.outcome for a in store.attempts_of(poison)} == {"lease_expired"}
    for job_id in neighbours:
        job = store.get_job(job_id)
        assert job.state is JobState.SUCCEEDED and job.attempt == 2  # lost one attempt, once
        assert [a.outcome for a in store.attempts_of(job_id)] == ["lease_expired", "succeeded"]
    # Fresh work kept flowing in the common lane, never again beside the poison job.
    fresh_jobs = [j for j in store.list_jobs(limit=100) if j.entity_id.startswith("fresh-")]
    assert len(fresh_jobs) == fresh
    assert all(j.state is JobState.SUCCEEDED for j in fresh_jobs)
    assert [j.attempt for j in fresh_jobs if j.entity_id != "fresh-0"] == [1] * (fresh - 1)
    assert violations(store) == {}
