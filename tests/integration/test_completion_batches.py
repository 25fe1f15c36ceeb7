"""Batched completion: one flush mixes outcomes, stale reports, duplicates and effects; every
completion must land exactly as if it had been written alone (``Store.complete``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from syncbridge.clock import FakeClock
from syncbridge.db.queries import Store
from syncbridge.jobtypes import AppliedEffect, effect_key
from syncbridge.models import Completion, EnqueueRequest, ErrorSnapshot, Job
from syncbridge.states import AttemptOutcome, JobState
from tests.failure_modes.support import violations

W = "worker-a"


def claim_all(store: Store, count: int, worker: str = W) -> list[Job]:
    store.enqueue_many([EnqueueRequest("noop", f"e{n}", {"n": n}, 2) for n in range(count)])
    jobs = store.claim(worker, ["noop"], count, lease_seconds=60)
    assert len(jobs) == count
    return jobs


def boom(retryable: bool) -> ErrorSnapshot:
    return ErrorSnapshot("Boom", "it broke", retryable=retryable, http_status=503)


def test_a_mixed_batch_lands_like_single_writes(store: Store, clock: FakeClock) -> None:
    a, b, c, d, e = claim_all(store, 5)
    effect = AppliedEffect("key-d", "billing", "inv-d")
    batch = [
        Completion(a.id, a.attempt, W, AttemptOutcome.SUCCEEDED),
        Completion(b.id, b.attempt, W, AttemptOutcome.ERROR, error=boom(True)),
        Completion(c.id, c.attempt, W, AttemptOutcome.FAILED, error=boom(False)),
        Completion(d.id, d.attempt, W, AttemptOutcome.SUCCEEDED, effect=effect),
        Completion(e.id, e.attempt, "someone-else", AttemptOutcome.SUCCEEDED),  # not its lease
        Completion(a.id, a.attempt, W, AttemptOutcome.SUCCEEDED),  # reported twice
    ]
    results = store.complete(batch)

    assert [(r.job_id, r.applied, r.state) for r in results] == [
        (a.id, True, JobState.SUCCEEDED),
        (b.id, True, JobState.PENDING),
        (c.id, True, JobState.FAILED),
        (d.id, True, JobState.SUCCEEDED),
        (e.id, False, None),
        (a.id, False, None),
    ]
    now = clock.now()
    done = store.get_job(a.id)
    assert done.state is JobState.SUCCEEDED and done.lease_owner is None
    assert done.finished_at == now and done.last_error is None
    retry = store.get_job(b.id)
    assert retry.state is JobState.PENDING and retry.next_run_at >= now
    assert retry.last_error is not None and retry.last_error["class"] == "Boom"
    assert retry.last_error["attempt"] == 1
    assert retry.last_error["attempt_id"] == store.attempts_of(b.id)[0].id
    assert store.get_job(e.id).state is JobState.RUNNING  # untouched: the fence held
    assert [a.outcome for a in store.attempts_of(c.id)] == ["failed"]
    assert [a.finished_at for a in store.attempts_of(a.id)] == [now]
    assert [(r["effect_key"], r["job_id"]) for r in store.ledger_rows()] == [("key-d", d.id)]
    assert violations(store) == {}


def test_a_success_with_a_follow_up_waiting_enqueues_it(store: Store) -> None:
    [job] = claim_all(store, 1)
    marked = store.enqueue(EnqueueRequest("noop", job.entity_id, {"newer": True}, 2))
    assert marked.follow_up_marked
    [result] = store.complete([Completion(job.id, job.attempt, W, AttemptOutcome.SUCCEEDED)])
    assert result.applied and result.state is JobState.SUCCEEDED
    assert result.follow_up_job_id is not None
    follow_up = store.get_job(result.follow_up_job_id)
    assert follow_up.state is JobState.PENDING and follow_up.payload == {"newer": True}
    assert not store.get_job(job.id).follow_up
    assert violations(store) == {}


def test_a_late_success_after_a_rescue_changes_nothing(store: Store, clock: FakeClock) -> None:
    [job] = claim_all(store, 1)
    clock.advance(61)
    [rescued] = store.rescue()
    assert rescued.state is JobState.PENDING
    [late] = store.complete([Completion(job.id, job.attempt, W, AttemptOutcome.SUCCEEDED)])
    assert not late.applied
    after = store.get_job(job.id)
    assert after.state is JobState.PENDING and after.isolate
    assert [a.outcome for a in store.attempts_of(job.id)] == ["lease_expired"]


def test_successes_use_the_store_clock(store: Store, clock: FakeClock) -> None:
    jobs = claim_all(store, 3)
    clock.advance(5)
    store.complete([Completion(j.id, j.attempt, W, AttemptOutcome.SUCCEEDED) for j in jobs])
    for job in jobs:
        assert store.get_job(job.id).finished_at == clock.now()
        [attempt] = store.attempts_of(job.id)
        assert attempt.finished_at - attempt.started_at == timedelta(seconds=5)


def test_an_effect_already_in_the_ledger_does_not_abort_the_batch(store: Store) -> None:
    first, second = claim_all(store, 2)
    shared = AppliedEffect("same-key", "billing", "inv-1")
    store.complete(
        [Completion(first.id, first.attempt, W, AttemptOutcome.SUCCEEDED, effect=shared)]
    )
    results = store.complete(
        [Completion(second.id, second.attempt, W, AttemptOutcome.SUCCEEDED, effect=shared)]
    )
    assert [r.applied for r in results] == [True]
    assert [r["job_id"] for r in store.ledger_rows()] == [first.id]


def test_an_empty_flush_writes_nothing(store: Store) -> None:
    assert store.complete([]) == []


HOSTILE_OWNERS = ['w"1', "w,2", "w{3}", "w\\4", "w 'five'", "NULL"]


def test_one_flush_fences_each_job_by_its_own_owner(store: Store) -> None:
    """Each row names its owner by a place in the flush's list of owners: every owner's jobs
    land, a job reported under another worker's name does not, whatever the names hold."""
    store.enqueue_many(
        [EnqueueRequest("noop", f"e{n}", {}, 2) for n in range(2 * len(HOSTILE_OWNERS))]
    )
    held = {owner: store.claim(owner, ["noop"], 2, lease_seconds=60) for owner in HOSTILE_OWNERS}
    batch = []
    for index, (owner, (mine, theirs)) in enumerate(held.items()):
        batch.append(Completion(mine.id, mine.attempt, owner, AttemptOutcome.SUCCEEDED))
        impostor = HOSTILE_OWNERS[(index + 1) % len(HOSTILE_OWNERS)]
        batch.append(Completion(theirs.id, theirs.attempt, impostor, AttemptOutcome.SUCCEEDED))
    results = store.complete(batch)
    assert [r.applied for r in results] == [True, False] * len(HOSTILE_OWNERS)
    for owner, (mine, theirs) in held.items():
        assert store.get_job(mine.id).state is JobState.SUCCEEDED
        still = store.get_job(theirs.id)
        assert still.state is JobState.RUNNING and still.lease_owner == owner
    assert violations(store) == {}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_one_statement_success_path_fences_by_owner_itself(store: Store) -> None:
    """The same, on the one-statement path alone: the general path behind it would otherwise
    hide a fence that let nothing through (or everything)."""
    store.enqueue_many(
        [EnqueueRequest("noop", f"e{n}", {}, 2) for n in range(2 * len(HOSTILE_OWNERS))]
    )
    held = {owner: store.claim(owner, ["noop"], 2, lease_seconds=60) for owner in HOSTILE_OWNERS}
    batch, rightful = [], set()
    for index, (owner, (mine, theirs)) in enumerate(held.items()):
        batch.append(Completion(mine.id, mine.attempt, owner, AttemptOutcome.SUCCEEDED))
        rightful.add((mine.id, mine.attempt))
        impostor = HOSTILE_OWNERS[(index + 1) % len(HOSTILE_OWNERS)]
        batch.append(Completion(theirs.id, theirs.attempt, impostor, AttemptOutcome.SUCCEEDED))
    assert store._succeed_in_one_statement(batch) == rightful


@pytest.mark.parametrize("path", ["plain", "follow_up"])
def test_a_success_records_only_effects_its_own_lineage_made(store: Store, path: str) -> None:
    """An effect found through an upstream's natural key may be another lineage's (its key
    names that lineage): the success does not file it (that lineage's job records it when it
    succeeds or is reconciled). A key of the job's own lineage, or one not made by
    ``effect_key``, is recorded. Both write paths: plain successes in one statement, and the
    general path (a success with a follow-up to enqueue)."""
    own, foreign, plain = claim_all(store, 3)
    if path == "follow_up":
        for job in (own, foreign, plain):  # each running job now owes a follow-up
            store.enqueue(EnqueueRequest("noop", job.entity_id, {"again": True}, 2))
    effects = {
        own.id: AppliedEffect(effect_key(own.id, "create", {}), "billing", "inv-own"),
        foreign.id: AppliedEffect(effect_key(own.id, "create", {"x": 1}), "billing", "inv-x"),
        plain.id: AppliedEffect("plugin-made-key", "billing", "inv-plain"),
    }
    results = store.complete(
        [
            Completion(job.id, job.attempt, W, AttemptOutcome.SUCCEEDED, effect=effects[job.id])
            for job in (own, foreign, plain)
        ]
    )
    assert [(r.job_id, r.state) for r in results] == [
        (job.id, JobState.SUCCEEDED) for job in (own, foreign, plain)
    ]
    rows = {(row["effect_key"], row["job_id"], row["lineage_id"]) for row in store.ledger_rows()}
    assert rows == {
        (effects[own.id].effect_key, own.id, own.id),
        ("plugin-made-key", plain.id, plain.id),
    }
    assert violations(store) == {}


@pytest.mark.parametrize("path", ["plain", "follow_up"])
def test_a_success_records_every_effect_it_applied(store: Store, path: str) -> None:
    """``Success.also_applied``: the effects applied on the way to the job's own get their
    ledger rows with the success (an invoice job's customer upsert), on both write paths; a key
    given twice gets one row; another lineage's key is left to that lineage (INV_016); a
    fenced-out success writes none of them (INV_003)."""
    mine, other, stale = claim_all(store, 3)
    if path == "follow_up":
        for job in (mine, other):
            store.enqueue(EnqueueRequest("noop", job.entity_id, {"again": True}, 2))
    invoice = AppliedEffect(effect_key(mine.id, "create_invoice", {}), "billing", "inv-1")
    customer = AppliedEffect(effect_key(mine.id, "upsert_customer", {}), "billing", "c-1")
    foreign = AppliedEffect(effect_key(other.id, "upsert_customer", {}), "billing", "c-2")
    only_on_the_way = AppliedEffect(effect_key(other.id, "upsert_customer", {"v": 2}), "b", "c")
    lost = AppliedEffect(effect_key(stale.id, "upsert_customer", {}), "billing", "c-3")
    results = store.complete(
        [
            Completion(
                mine.id, mine.attempt, W, AttemptOutcome.SUCCEEDED, None, invoice,
                (customer, customer, foreign),
            ),
            Completion(
                other.id, other.attempt, W, AttemptOutcome.SUCCEEDED, None, None,
                (only_on_the_way,),
            ),
            Completion(stale.id, stale.attempt, "not-its-owner", AttemptOutcome.SUCCEEDED,
                       None, None, (lost,)),
        ]
    )  # fmt: skip
    assert [(r.job_id, r.applied) for r in results] == [
        (mine.id, True),
        (other.id, True),
        (stale.id, False),
    ]
    rows = {(row["effect_key"], row["job_id"], row["upstream_ref"]) for row in store.ledger_rows()}
    assert rows == {
        (invoice.effect_key, mine.id, "inv-1"),
        (customer.effect_key, mine.id, "c-1"),
        (only_on_the_way.effect_key, other.id, "c"),
    }
    assert violations(store) == {}


def test_a_failed_attempt_records_none_of_its_effects(store: Store) -> None:
    """Only a success files effects: a failure or a retry reporting some writes no row (the
    lineage's next success sends the same keys and files them then)."""
    failing, retrying = claim_all(store, 2)
    effect = AppliedEffect(effect_key(failing.id, "upsert_customer", {}), "billing", "c-1")
    store.complete(
        [
            Completion(failing.id, failing.attempt, W, AttemptOutcome.FAILED, boom(False),
                       None, (effect,)),
            Completion(retrying.id, retrying.attempt, W, AttemptOutcome.ERROR, boom(True),
                       effect, (effect,)),
        ]
    )  # fmt: skip
    assert store.ledger_rows() == []
    assert store.get_job(failing.id).state is JobState.FAILED
    assert violations(store) == {}


@pytest.mark.parametrize("path", ["plain", "follow_up"])
def test_a_stale_attempt_beside_the_current_one_files_nothing(
    store: Store, clock: FakeClock, path: str
) -> None:
    """One flush holding a late success of attempt 1 and the success of attempt 2 of the same
    job (its lease expired and it ran again): only attempt 2's effects are filed. Found by the
    session 12 review: the PostgreSQL one-statement path matched effects by job id only."""
    [job] = claim_all(store, 1)
    clock.advance(120)  # attempt 1's lease is gone
    store.rescue()
    clock.advance(3600)  # past its backoff
    [again] = store.claim(W, ["noop"], 1, lease_seconds=60, isolated=True)  # it lost a lease
    assert (again.id, again.attempt) == (job.id, 2)
    if path == "follow_up":
        store.enqueue(EnqueueRequest("noop", job.entity_id, {"again": True}, 2))
    stale = AppliedEffect("stale-invoice", "billing", "inv-stale")
    stale_on_the_way = AppliedEffect("stale-customer", "billing", "c-stale")
    current = AppliedEffect("current-invoice", "billing", "inv-2")
    results = store.complete(
        [
            Completion(job.id, 1, W, AttemptOutcome.SUCCEEDED, None, stale, (stale_on_the_way,)),
            Completion(job.id, 2, W, AttemptOutcome.SUCCEEDED, None, current),
        ]
    )
    assert [(r.attempt, r.applied) for r in results] == [(1, False), (2, True)]
    assert [row["effect_key"] for row in store.ledger_rows()] == ["current-invoice"]
    assert violations(store) == {}
