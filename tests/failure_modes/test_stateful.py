"""Random interleavings of the job lifecycle against the real ``Store`` (injected clock) on
SQLite and PostgreSQL: enqueue, claim, heartbeat, clock advance, lease expiry and rescue, crash
(claims live on as stale handles), completion by stale and fresh workers, cancel, retry, replay.
After every step all of ``run_checks`` holds, plus a model: one active job per entity, attempts
within budget, a refused (fenced) completion changes nothing. One database per backend for the
module; tables emptied per example. Against FM_002's unfenced store it fails in a few examples.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import stateful as sm
from hypothesis import strategies as st
from sqlalchemy import Engine

from syncbridge.clock import FakeClock
from syncbridge.db.queries import Store
from syncbridge.errors import IllegalTransition
from syncbridge.invariants import run_checks
from syncbridge.jobtypes import AppliedEffect, effect_key
from syncbridge.models import Completion, EnqueueRequest, ErrorSnapshot
from syncbridge.retry import RetryPolicy
from syncbridge.states import ACTIVE_STATES, AttemptOutcome, JobState
from tests.conftest import truncate

ENTITIES, WORKERS = ("a", "b", "c"), ("w1", "w2")
LEASE, GRACE, RESCUE_EVERY = 10.0, 30.0, 15.0  # rescue at least every 15 s + one advance (11 s)
OUTCOMES = st.sampled_from([o for o in AttemptOutcome if o not in ("running", "lease_expired")])
ERRORS = {"error": ("Unavailable", True), "failed": ("Invalid", False), "timeout": ("Slow", True)}


class Lifecycle(sm.RuleBasedStateMachine):
    engine: Engine  # set by the test, per backend
    jobs = sm.Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        truncate(self.engine)
        self.clock = FakeClock()
        self.store = Store(self.engine, self.clock)
        self.policy = RetryPolicy(base_seconds=0.0)  # a rescued job is due at once
        self.generation = dict.fromkeys(WORKERS, 0)
        self.held: dict[str, set[tuple[int, int]]] = {}  # what each live worker thinks it has
        self.claims: list[tuple[int, int, str]] = []  # (job, attempt, worker): every claim
        self.since_rescue = 0.0
        for worker in WORKERS:
            self.crash(worker, start=True)

    def _name(self, worker: str) -> str:
        return f"{worker}#{self.generation[worker]}"

    def _snapshot(self, job_id: int) -> Any:
        return self.store.get_job(job_id), self.store.attempts_of(job_id), self.store.ledger_rows()

    @sm.initialize(target=jobs, max_retries=st.integers(1, 2))
    def some_work(self, max_retries: int) -> Any:
        requests = [EnqueueRequest("noop", entity, {}, max_retries) for entity in ENTITIES]
        return sm.multiple(*(self.store.enqueue(r).job.id for r in requests))

    @sm.rule(target=jobs, entity=st.sampled_from(ENTITIES), max_retries=st.integers(0, 2))
    def enqueue(self, entity: str, max_retries: int) -> int:
        active = [j for j in self.store.list_jobs(entity_id=entity) if j.state in ACTIVE_STATES]
        result = self.store.enqueue(EnqueueRequest("noop", entity, {}, max_retries))
        assert result.deduplicated == bool(active)
        assert not active or result.job.id == active[0].id
        return result.job.id

    @sm.rule(worker=st.sampled_from(WORKERS), limit=st.integers(1, 3))
    def claim(self, worker: str, limit: int) -> None:
        """As an idle worker does: a job that must run alone first, else a batch."""
        name = self._name(worker)
        claimed = self.store.claim(name, ["noop"], 1, LEASE, isolated=True)
        claimed = claimed or self.store.claim(name, ["noop"], limit, LEASE)
        assert len(claimed) <= limit
        for job in claimed:
            assert (job.state, job.lease_owner) == (JobState.RUNNING, name)
            self.held[name].add((job.id, job.attempt))
            self.claims.append((job.id, job.attempt, name))

    @sm.rule(worker=st.sampled_from(WORKERS))
    def heartbeat(self, worker: str) -> None:
        name = self._name(worker)
        result = self.store.renew(name, self.held[name], LEASE)
        assert result.renewed | result.lost == {job_id for job_id, _ in self.held[name]}
        self.held[name] = {(j, n) for j, n in self.held[name] if j in result.renewed}

    @sm.rule(seconds=st.sampled_from([0.5, 3.0, 11.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.since_rescue += seconds
        if self.since_rescue >= RESCUE_EVERY:  # a live worker's rescuer runs at least this often
            self.rescue()

    @sm.rule(worker=st.sampled_from(WORKERS))
    def take_over(self, worker: str) -> None:
        """Every lease held now runs out, the rescuer notices, and ``worker`` claims."""
        self.clock.advance(LEASE + 1)
        self.rescue()
        self.claim(worker, 3)

    @sm.rule()
    def rescue(self) -> None:
        assert {r.state for r in self.store.rescue(self.policy)} <= {"pending", "dead", "cancelled"}
        self.since_rescue = 0.0

    @sm.rule(worker=st.sampled_from(WORKERS))
    def crash(self, worker: str, start: bool = False) -> None:
        """The worker vanishes without a word; a new one (a new id) takes its place."""
        self.generation[worker] += 0 if start else 1
        self.store.register_worker(self._name(worker), "host", 1, ["noop"])
        self.held[self._name(worker)] = set()

    @sm.rule(worker=st.sampled_from(WORKERS), outcome=OUTCOMES, data=st.data())
    def finish_held(self, worker: str, outcome: AttemptOutcome, data: st.DataObject) -> None:
        """A live worker reports a job it believes it holds (the lease may be gone by now)."""
        if held := sorted(self.held[self._name(worker)]):
            job_id, attempt = data.draw(st.sampled_from(held))
            self.complete((job_id, attempt, self._name(worker)), outcome)

    @sm.rule(outcome=OUTCOMES, superseded=st.sampled_from([True, True, False]), data=st.data())
    def late_report(self, outcome: AttemptOutcome, superseded: bool, data: st.DataObject) -> None:
        """A claim reports late: one whose job was rescued and claimed again (FM_002), or any
        claim ever made (fresh, or long stale: a paused process, a zombie)."""
        running = {j.id: j.attempt for j in self.store.list_jobs(state="running", limit=1000)}
        stale = [c for c in self.claims if running.get(c[0], c[1]) != c[1]]
        if claims := stale if superseded else self.claims:
            self.complete(data.draw(st.sampled_from(claims)), outcome)

    def complete(self, handle: tuple[int, int, str], outcome: AttemptOutcome) -> None:
        job_id, attempt, worker = handle
        before = self._snapshot(job_id)
        job = before[0]
        fresh = (job.state, job.attempt, job.lease_owner) == (JobState.RUNNING, attempt, worker)
        key = effect_key(job.effective_lineage_id, "sync", {"entity": job.entity_id})
        effect = AppliedEffect(key, "billing", f"ref-{job_id}-{attempt}")
        name, retryable = ERRORS.get(outcome, ("", True))
        error = ErrorSnapshot(name, f"attempt {attempt}", retryable) if name else None
        completion = Completion(job_id, attempt, worker, outcome, error, effect)
        [result] = self.store.complete([completion], self.policy)
        self.held.get(worker, set()).discard((job_id, attempt))
        assert result.applied == fresh
        if not fresh:
            assert self._snapshot(job_id) == before  # the fence: nothing changed
            return
        after = self.store.get_job(job_id)
        assert after.state is result.state and after.lease_owner is None
        assert self.store.attempts_of(job_id)[-1].outcome == outcome
        keys = {row["effect_key"] for row in self.store.ledger_rows()}
        assert after.state is not JobState.SUCCEEDED or key in keys

    @sm.rule(job_id=jobs, action=st.sampled_from(["cancel", "retry"]))
    def operator(self, job_id: int, action: str) -> None:
        before = self.store.get_job(job_id)
        try:
            after = getattr(self.store, action)(job_id)
        except IllegalTransition:
            assert self.store.get_job(job_id) == before
            assert action == "retry" or before.state not in ACTIVE_STATES
            return
        if action == "retry":
            assert (before.state, after.state) == (JobState.FAILED, JobState.PENDING)
            assert after.charged_attempts == 0 and after.attempt == before.attempt
        else:
            running = before.state is JobState.RUNNING
            assert after.state is (JobState.RUNNING if running else JobState.CANCELLED)
            assert after.cancel_requested == running

    @sm.rule(target=jobs, job_id=jobs)
    def replay(self, job_id: int) -> Any:
        before = self.store.get_job(job_id)
        try:
            new = self.store.replay(job_id)
        except IllegalTransition:
            assert self.store.get_job(job_id) == before
            return sm.multiple()
        assert before.state in (JobState.DEAD, JobState.FAILED)
        assert self.store.get_job(job_id) == before  # replay never alters the replayed job
        assert new.effective_lineage_id == before.effective_lineage_id
        return new.id

    @sm.invariant()
    def every_invariant_holds(self) -> None:
        assert [(r.code, r.examples) for r in run_checks(self.store, GRACE) if not r.ok] == []
        jobs = self.store.list_jobs(limit=1000)
        active = [(j.job_type, j.entity_id) for j in jobs if j.state in ACTIVE_STATES]
        assert len(active) == len(set(active))
        assert all(j.charged_attempts <= j.max_retries + 1 for j in jobs)


def test_lifecycle_interleavings_keep_every_invariant(engine: Engine) -> None:
    Lifecycle.engine = engine
    profile = settings()  # the profile tests/conftest.py loaded; capped for time
    examples, slow = min(profile.max_examples, 25), [HealthCheck.too_slow]
    capped = settings(profile, max_examples=examples, stateful_step_count=50, deadline=None)
    sm.run_state_machine_as_test(Lifecycle, settings=settings(capped, suppress_health_check=slow))
