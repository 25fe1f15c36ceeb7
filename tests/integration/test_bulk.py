"""Bulk enqueue keeps deduplication; retention keeps what keys, ledger and replays need."""

from __future__ import annotations

from datetime import timedelta

from syncbridge.clock import FakeClock
from syncbridge.db.queries import Store
from syncbridge.jobtypes import AppliedEffect
from syncbridge.models import Completion, EnqueueRequest, ErrorSnapshot
from syncbridge.states import AttemptOutcome, JobState


def req(entity: str, **kw: object) -> EnqueueRequest:
    return EnqueueRequest("noop", entity, kw.pop("payload", {}), 3, **kw)  # type: ignore[arg-type]


def test_enqueue_many_inserts_and_deduplicates(store: Store, clock: FakeClock) -> None:
    store.enqueue(req("running"))
    [running] = store.claim("w", ["noop"], 10, 60)
    existing = store.enqueue(req("e1")).job
    requests = [req(f"e{n}") for n in range(2500)] + [
        req("e5"),
        req("running"),
        req("k", idempotency_key="key-1"),
    ]
    results = store.enqueue_many(requests)
    assert len(results) == len(requests)
    assert results[1].job.id == existing.id and results[1].deduplicated
    assert sum(not r.deduplicated for r in results) == 2500  # e0, e2..e2499, k
    assert results[-3].deduplicated and results[-3].job.entity_id == "e5"
    assert results[-2].follow_up_marked and results[-2].job.id == running.id
    assert store.counts_by_state()["pending"] == 2501  # e0..e2499 and k
    fresh = results[0].job
    assert fresh.lineage_id == fresh.id and fresh.created_at == clock.now()


def test_prune_keeps_what_is_still_needed(store: Store, clock: FakeClock) -> None:
    plain = store.enqueue(req("plain")).job
    keyed = store.enqueue(req("keyed", idempotency_key="k")).job
    effect = store.enqueue(req("effect")).job
    for job in store.claim("w", ["noop"], 10, 60):
        applied = AppliedEffect("eff-1", "billing", "x") if job.id == effect.id else None
        store.complete(
            [Completion(job.id, job.attempt, "w", AttemptOutcome.SUCCEEDED, effect=applied)]
        )
    young = store.enqueue(req("young")).job
    store.cancel(young.id)
    clock.advance(8 * 86400)
    cutoff = clock.now() - timedelta(days=7)
    store.cancel(store.enqueue(req("young2")).job.id)
    assert store.prune(cutoff, dry_run=True) == 2
    assert store.get_job(plain.id).state is JobState.SUCCEEDED
    assert store.prune(cutoff) == 2
    remaining = {j.entity_id for j in store.list_jobs(limit=100)}
    assert remaining == {"keyed", "effect", "young2"}
    assert store.attempts_of(plain.id) == []
    assert store.enqueue(req("keyed", idempotency_key="k")).job.id == keyed.id


def test_prune_keeps_a_job_reconcile_is_still_asking_about(store: Store, clock: FakeClock) -> None:
    """A job whose upstream could not yet tell whether its effect happened (it has a next ask,
    ``reconcile_asks``) is kept: pruned, its effect could exist upstream with no record here.
    Once answered, it goes like any other."""
    job = store.enqueue(EnqueueRequest("noop", "unknown", {}, 0)).job
    [claimed] = store.claim("w", ["noop"], 1, 60)
    error = ErrorSnapshot("UpstreamTimeout", "no answer", True, None)
    store.complete([Completion(claimed.id, claimed.attempt, "w", AttemptOutcome.ERROR, error)])
    dead = store.get_job(job.id)
    assert dead.state is JobState.DEAD
    assert store.ask_again_later(job.id, "billing -> 503", lambda asks: 60.0) is not None
    clock.advance(8 * 86400)
    cutoff = clock.now() - timedelta(days=7)
    assert store.prune(cutoff) == 0
    assert store.get_job(job.id) == dead and store.next_ask(job.id) is not None
    assert store.record_effect_status(dead, "not_applied", None) == (True, "not_applied")
    assert store.next_ask(job.id) is None
    assert store.prune(cutoff) == 1
    assert store.list_jobs(limit=10) == []
