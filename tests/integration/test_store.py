"""The store's behaviour, on SQLite and PostgreSQL, with the injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from syncbridge.clock import FakeClock
from syncbridge.db.queries import Store
from syncbridge.errors import IllegalTransition, InvalidInput, UnknownJob
from syncbridge.invariants import run_checks
from syncbridge.jobtypes import AppliedEffect
from syncbridge.models import Completion, EnqueueRequest, ErrorSnapshot, Job
from syncbridge.states import AttemptOutcome, JobState

W1, W2 = "worker-1", "worker-2"


def request(entity: str = "e1", **kw: object) -> EnqueueRequest:
    values: dict[str, object] = {
        "job_type": "noop",
        "entity_id": entity,
        "payload": {},
        "max_retries": 3,
    }
    values.update(kw)
    return EnqueueRequest(**values)  # type: ignore[arg-type]


def claim_one(store: Store, worker: str = W1, lease: float = 60) -> Job:
    claimed = store.claim(worker, ["noop"], 1, lease)
    assert len(claimed) == 1
    return claimed[0]


def fail(job: Job, worker: str = W1, retryable: bool = True, **kw: object) -> Completion:
    outcome = AttemptOutcome.ERROR if retryable else AttemptOutcome.FAILED
    error = ErrorSnapshot("UpstreamUnavailable", "503", retryable, 503, **kw)  # type: ignore[arg-type]
    return Completion(job.id, job.attempt, worker, outcome, error=error)


def succeed(job: Job, worker: str = W1, effect: AppliedEffect | None = None) -> Completion:
    return Completion(job.id, job.attempt, worker, AttemptOutcome.SUCCEEDED, effect=effect)


class TestEnqueue:
    def test_new_job_is_pending_with_its_own_lineage(self, store: Store) -> None:
        result = store.enqueue(request())
        assert not result.deduplicated
        job = result.job
        assert job.state is JobState.PENDING and job.attempt == 0
        assert job.lineage_id == job.id
        assert job.correlation_id

    def test_pending_duplicate_returns_existing(self, store: Store) -> None:
        first = store.enqueue(request())
        second = store.enqueue(request(payload={"other": 1}))
        assert second.deduplicated and second.job.id == first.job.id
        assert store.counts_by_state()["pending"] == 1

    def test_enqueue_while_running_marks_one_follow_up(self, store: Store) -> None:
        store.enqueue(request())
        job = claim_one(store)
        for n in range(3):
            result = store.enqueue(request(payload={"n": n}))
            assert result.deduplicated and result.follow_up_marked
        [done] = store.complete([succeed(job)])
        assert done.follow_up_job_id is not None
        follow_up = store.get_job(done.follow_up_job_id)
        assert follow_up.state is JobState.PENDING
        assert follow_up.payload == {"n": 2}  # the latest change wins
        assert store.counts_by_state() | {} == {**store.counts_by_state()}
        assert len(store.list_jobs(state="pending")) == 1

    def test_idempotency_key_maps_to_one_job(self, store: Store) -> None:
        first = store.enqueue(request(idempotency_key="k1"))
        job = claim_one(store)
        store.complete([succeed(job)])
        again = store.enqueue(request(idempotency_key="k1"))
        assert again.deduplicated and again.job.id == first.job.id
        with pytest.raises(InvalidInput, match="different parameters"):
            store.enqueue(request(idempotency_key="k1", payload={"x": 1}))

    def test_run_at_delays_claim(self, store: Store, clock: FakeClock) -> None:
        store.enqueue(request(run_at=clock.now() + timedelta(seconds=30)))
        assert store.claim(W1, ["noop"], 10, 60) == []
        clock.advance(31)
        assert len(store.claim(W1, ["noop"], 10, 60)) == 1


class TestClaimAndFencing:
    def test_claim_sets_lease_attempt_and_attempt_row(self, store: Store, clock: FakeClock) -> None:
        store.enqueue(request())
        job = claim_one(store, lease=60)
        assert job.state is JobState.RUNNING and job.attempt == 1 and job.lease_owner == W1
        assert job.lease_expires_at == clock.now() + timedelta(seconds=60)
        [attempt] = store.attempts_of(job.id)
        assert attempt.number == 1 and attempt.outcome == "running" and attempt.worker_id == W1

    def test_claim_only_given_types_and_limit(self, store: Store) -> None:
        for n in range(5):
            store.enqueue(request(f"e{n}"))
        assert store.claim(W1, ["other"], 10, 60) == []
        assert len(store.claim(W1, ["noop"], 3, 60)) == 3
        assert len(store.claim(W2, ["noop"], 10, 60)) == 2
        assert store.claim(W2, ["noop"], 10, 60) == []

    def test_stale_worker_completion_is_fenced_out(self, store: Store, clock: FakeClock) -> None:
        store.enqueue(request())
        old = claim_one(store, W1, lease=10)
        clock.advance(11)
        assert [r.job_id for r in store.rescue()] == [old.id]
        clock.advance(60)  # past the backoff
        # isolated after a lost lease: claimed alone
        [new] = store.claim(W2, ["noop"], 1, 60, isolated=True)
        assert new.attempt == 2
        [late] = store.complete([succeed(old, W1)])
        assert not late.applied
        assert store.get_job(old.id).state is JobState.RUNNING
        assert store.get_job(old.id).lease_owner == W2
        renewal = store.renew(W1, [(old.id, old.attempt)], 60)
        assert renewal.lost == {old.id} and not renewal.renewed
        [fresh] = store.complete([succeed(new, W2)])
        assert fresh.applied and fresh.state is JobState.SUCCEEDED

    def test_renew_extends_lease_and_reports_cancel(self, store: Store, clock: FakeClock) -> None:
        store.enqueue(request())
        job = claim_one(store, lease=10)
        clock.advance(8)
        result = store.renew(W1, [(job.id, job.attempt)], 10)
        assert result.renewed == {job.id} and not result.cancel_requested
        clock.advance(8)
        assert store.rescue() == []
        store.cancel(job.id)
        assert store.renew(W1, [(job.id, job.attempt)], 10).cancel_requested == {job.id}


class TestRetriesAndDeadLetters:
    def test_retryable_errors_back_off_then_dead(self, store: Store, clock: FakeClock) -> None:
        store.enqueue(request(max_retries=2))
        for expected_attempt in (1, 2, 3):
            clock.advance(3600)
            job = claim_one(store)
            assert job.attempt == expected_attempt
            [result] = store.complete([fail(job)])
        assert result.state is JobState.DEAD
        dead = store.get_job(job.id)
        assert dead.last_error is not None
        assert dead.last_error["class"] == "UpstreamUnavailable"
        assert dead.last_error["attempt"] == 3 and dead.last_error["attempt_id"]
        assert dead.finished_at is not None
        assert [j.id for j in store.dlq()] == [job.id]

    def test_backoff_grows_and_retry_after_wins(self, store: Store, clock: FakeClock) -> None:
        store.enqueue(request(max_retries=5))
        job = claim_one(store)
        store.complete([fail(job, retry_after=120.0)])
        waiting = store.get_job(job.id)
        assert waiting.next_run_at >= clock.now() + timedelta(seconds=120)
        clock.advance(119)
        assert store.claim(W1, ["noop"], 1, 60) == []
        clock.advance(2)
        assert len(store.claim(W1, ["noop"], 1, 60)) == 1

    def test_terminal_error_fails_at_once(self, store: Store) -> None:
        store.enqueue(request())
        job = claim_one(store)
        [result] = store.complete([fail(job, retryable=False)])
        assert result.state is JobState.FAILED

    def test_manual_retry_resets_the_budget(self, store: Store, clock: FakeClock) -> None:
        store.enqueue(request(max_retries=0))
        job = claim_one(store)
        store.complete([fail(job, retryable=False)])
        assert store.retry(job.id).state is JobState.PENDING
        again = claim_one(store)
        assert again.attempt == 2
        [result] = store.complete([fail(again)])
        assert result.state is JobState.DEAD  # max_retries=0: one attempt since the retry
        assert len(store.attempts_of(job.id)) == 2

    def test_released_attempt_is_not_charged(self, store: Store) -> None:
        store.enqueue(request(max_retries=0))
        job = claim_one(store)
        [released] = store.release(W1, [(job.id, job.attempt)])
        assert released.state is JobState.PENDING
        again = claim_one(store)
        [result] = store.complete([fail(again)])
        assert result.state is JobState.DEAD
        outcomes = [a.outcome for a in store.attempts_of(job.id)]
        assert outcomes == ["released", "error"]


class TestLeaseRecovery:
    def test_expired_lease_returns_job_with_backoff(self, store: Store, clock: FakeClock) -> None:
        store.enqueue(request())
        job = claim_one(store, lease=5)
        clock.advance(4)
        assert store.rescue() == []
        clock.advance(2)
        [rescued] = store.rescue()
        assert rescued.state is JobState.PENDING and rescued.previous_owner == W1
        after = store.get_job(job.id)
        assert after.isolate and after.lease_owner is None
        assert after.last_error and after.last_error["class"] == "LeaseExpired"
        [attempt] = store.attempts_of(job.id)
        assert attempt.outcome == "lease_expired" and attempt.finished_at is not None

    def test_poison_job_dies_its_neighbours_do_not(self, store: Store, clock: FakeClock) -> None:
        """A job that kills its worker every time ends dead after max_retries + 1 attempts; the
        jobs claimed beside it lose one attempt, then run alone and succeed."""
        poison = store.enqueue(request("poison", max_retries=2)).job
        for n in range(3):
            store.enqueue(request(f"neighbour-{n}", max_retries=2))
        batch = store.claim(W1, ["noop"], 10, lease_seconds=5)
        assert len(batch) == 4
        clock.advance(6)  # the worker died with all four
        assert len(store.rescue()) == 4
        for _round in range(10):
            clock.advance(3600)
            if not store.claim(W2, ["noop"], 10, 5):  # nothing non-isolated is due
                pass
            [job] = store.claim(W2, ["noop"], 1, 5, isolated=True) or [None]  # type: ignore[list-item]
            if job is None:
                break
            if job.id == poison.id:
                clock.advance(6)  # it kills the worker again
                store.rescue()
            else:
                store.complete([succeed(job, W2)])
        assert store.get_job(poison.id).state is JobState.DEAD
        assert store.get_job(poison.id).attempt == 3
        assert store.counts_by_state()["succeeded"] == 3

    def test_cancel_requested_running_job_ends_cancelled_on_expiry(
        self, store: Store, clock: FakeClock
    ) -> None:
        store.enqueue(request())
        job = claim_one(store, lease=5)
        store.cancel(job.id)
        clock.advance(6)
        [rescued] = store.rescue()
        assert rescued.state is JobState.CANCELLED


class TestOperatorActions:
    def test_cancel_pending_is_immediate(self, store: Store) -> None:
        job = store.enqueue(request()).job
        assert store.cancel(job.id).state is JobState.CANCELLED
        with pytest.raises(IllegalTransition):
            store.cancel(job.id)

    def test_cancel_running_waits_for_attempt_end(self, store: Store) -> None:
        store.enqueue(request())
        job = claim_one(store)
        assert store.cancel(job.id).state is JobState.RUNNING
        [result] = store.complete([fail(job)])
        assert result.state is JobState.CANCELLED

    @pytest.mark.parametrize("with_effect", [True, False])
    def test_a_success_after_a_cancel_request_ends_cancelled_and_keeps_its_effect(
        self, store: Store, with_effect: bool
    ) -> None:
        # CONTRACT: a running job asked to stop "becomes cancelled when its attempt ends",
        # however its handler ended. What happened upstream is still recorded: the attempt as
        # succeeded, the effect in the ledger, the job's effect_status as applied.
        store.enqueue(request("asked-to-stop"))
        store.enqueue(request("left-alone"))
        asked, left = store.claim(W1, ["noop"], 2, 60)
        store.cancel(asked.id)
        effect = AppliedEffect("key-asked", "billing", "inv-1") if with_effect else None
        other = AppliedEffect("key-left", "billing", "inv-2") if with_effect else None
        # One batch: the plain success takes the fast path, the cancelled one the locked path.
        results = store.complete([succeed(asked, effect=effect), succeed(left, effect=other)])
        assert [r.state for r in results] == [JobState.CANCELLED, JobState.SUCCEEDED]
        cancelled = store.get_job(asked.id)
        assert cancelled.state is JobState.CANCELLED and cancelled.finished_at is not None
        assert cancelled.effect_status == ("applied" if with_effect else None)
        assert store.attempts_of(asked.id)[-1].outcome == AttemptOutcome.SUCCEEDED
        ledger = {row["effect_key"]: row["job_id"] for row in store.ledger_rows()}
        assert ledger == ({"key-asked": asked.id, "key-left": left.id} if with_effect else {})
        assert all(check.ok for check in run_checks(store)), run_checks(store)

    def test_replay_links_and_never_changes_the_old_job(self, store: Store) -> None:
        store.enqueue(request(max_retries=0))
        job = claim_one(store)
        store.complete([fail(job)])
        dead_before = store.get_job(job.id)
        new = store.replay(job.id)
        assert store.get_job(job.id) == dead_before
        assert new.state is JobState.PENDING and new.replay_of_job_id == job.id
        assert new.replay_of_attempt_id == store.attempts_of(job.id)[-1].id
        assert new.lineage_id == job.lineage_id
        assert new.correlation_id.startswith(job.correlation_id) and new.correlation_id != (
            job.correlation_id
        )
        assert store.lineage_of(new) == {"replays": [job.id], "replayed_by": []}
        assert store.lineage_of(dead_before) == {"replays": [], "replayed_by": [new.id]}
        with pytest.raises(IllegalTransition, match="already has an active"):
            store.replay(job.id)

    def test_replay_refuses_non_terminal(self, store: Store) -> None:
        job = store.enqueue(request()).job
        with pytest.raises(IllegalTransition, match="only dead or failed"):
            store.replay(job.id)

    def test_unknown_job(self, store: Store) -> None:
        for action in (store.cancel, store.retry, store.replay, store.get_job):
            with pytest.raises(UnknownJob):
                action(999_999)

    @pytest.mark.parametrize("state", [s for s in JobState])
    def test_every_illegal_operator_move_changes_nothing(
        self, store: Store, clock: FakeClock, state: JobState
    ) -> None:
        job = _job_in_state(store, clock, state)
        before = store.get_job(job.id)
        legal = {
            "cancel": {JobState.PENDING, JobState.RUNNING},
            "retry": {JobState.FAILED},
        }
        for name, allowed in legal.items():
            if state in allowed:
                continue
            with pytest.raises(IllegalTransition):
                getattr(store, name)(job.id)
            assert store.get_job(job.id) == before
        if state not in (JobState.DEAD, JobState.FAILED):
            with pytest.raises(IllegalTransition):
                store.replay(job.id)
            assert store.get_job(job.id) == before


def _job_in_state(store: Store, clock: FakeClock, state: JobState) -> Job:
    job = store.enqueue(request(f"state-{state}", max_retries=0)).job
    if state is JobState.PENDING:
        return job
    if state is JobState.CANCELLED:
        return store.cancel(job.id)
    running = claim_one(store)
    if state is JobState.RUNNING:
        return running
    completion = {
        JobState.SUCCEEDED: succeed(running),
        JobState.FAILED: fail(running, retryable=False),
        JobState.DEAD: fail(running),
    }[state]
    store.complete([completion])
    return store.get_job(job.id)


class TestLedgerAndTime:
    def test_success_writes_ledger_row_once_per_effect(self, store: Store) -> None:
        store.enqueue(request(max_retries=0))
        job = claim_one(store)
        effect = AppliedEffect("key-1", "billing", "inv_1")
        store.complete([succeed(job, effect=effect)])
        rows = store.ledger_rows()
        assert [(r["effect_key"], r["job_id"], r["upstream_ref"]) for r in rows] == [
            ("key-1", job.id, "inv_1")
        ]

    def test_replay_meeting_existing_effect_links_without_failing(self, store: Store) -> None:
        store.enqueue(request(max_retries=0))
        job = claim_one(store)
        store.complete([fail(job, retryable=False)])
        store.replay(job.id)
        first = claim_one(store)
        store.complete([succeed(first, effect=AppliedEffect("key-x", "billing", "inv_9"))])
        store.replay(first.id) if False else None
        assert len(store.ledger_rows()) == 1

    def test_datetimes_round_trip_utc_aware(self, store: Store, clock: FakeClock) -> None:
        plus_five = timezone(timedelta(hours=5))
        run_at = datetime(2030, 6, 1, 17, 0, tzinfo=plus_five)
        job = store.enqueue(request(run_at=run_at)).job
        stored = store.get_job(job.id)
        for value in (stored.created_at, stored.updated_at, stored.next_run_at):
            assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
        assert stored.next_run_at == run_at.astimezone(UTC)
        assert stored.created_at == clock.now()


def test_jobs_of_an_entity_include_every_state(store: Store, clock: FakeClock) -> None:
    """On PostgreSQL the entity index holds only finished jobs and the active ones are read
    through their unique index (migration 0005): a job of the entity in every state is listed,
    newest first, with the state filter and the cursor applied to all of them."""
    entity = "e'1\\N"
    done = store.enqueue(EnqueueRequest("noop", entity, {}, 0)).job
    store.enqueue(EnqueueRequest("noop", "someone-else", {}, 0))
    [claimed] = store.claim("w", ["noop"], 1, 60)
    assert claimed.id == done.id
    store.complete([Completion(done.id, 1, "w", AttemptOutcome.SUCCEEDED)])
    running = store.enqueue(EnqueueRequest("noop", entity, {"n": 2}, 0)).job
    store.claim("w", ["noop"], 2, 60)  # the other entity's job and this one
    pending = store.enqueue(EnqueueRequest("other-type", entity, {}, 0)).job
    listed = store.list_jobs(entity_id=entity)
    assert [(j.id, j.state) for j in listed] == [
        (pending.id, JobState.PENDING),
        (running.id, JobState.RUNNING),
        (done.id, JobState.SUCCEEDED),
    ]
    assert [j.id for j in store.list_jobs(entity_id=entity, state="running")] == [running.id]
    assert [j.id for j in store.list_jobs(entity_id=entity, before_id=pending.id)] == [
        running.id,
        done.id,
    ]
    assert store.list_jobs(entity_id="nobody") == []
