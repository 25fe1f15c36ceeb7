"""`syncbridge check` finds each kind of violation it claims to find, and passes a clean run."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Connection, delete, insert, update

from syncbridge.clock import FakeClock
from syncbridge.db.queries import Store
from syncbridge.db.schema import attempts, jobs, ledger, reconcile_asks, workers
from syncbridge.invariants import run_checks
from syncbridge.jobtypes import effect_key
from syncbridge.models import Completion, EnqueueRequest
from syncbridge.states import AttemptOutcome


def _scenario(store: Store, clock: FakeClock) -> dict[str, int]:
    """A few jobs in every state, the way the engine leaves them."""
    ids = {}
    for name in ("done", "running", "pending", "dead"):
        ids[name] = store.enqueue(EnqueueRequest("noop", name, {}, 0)).job.id
    store.cancel(ids["pending"])
    ids["pending"] = store.enqueue(EnqueueRequest("noop", "pending2", {}, 0)).job.id
    claimed = {j.entity_id: j for j in store.claim("w", ["noop"], 3, 60)}
    store.complete(
        [
            Completion(claimed["done"].id, 1, "w", AttemptOutcome.SUCCEEDED),
            Completion(claimed["dead"].id, 1, "w", AttemptOutcome.ERROR),
        ]
    )
    store.register_worker("w", "host", 1, ["noop"])
    return ids


def failing(store: Store) -> set[str]:
    return {r.code for r in run_checks(store) if not r.ok}


def test_clean_run_passes(store: Store, clock: FakeClock) -> None:
    _scenario(store, clock)
    assert failing(store) == set()


CORRUPTIONS: dict[str, Callable[[Connection, dict[str, int]], object]] = {
    "INV_001": lambda c, ids: c.execute(
        update(jobs).where(jobs.c.id == ids["running"]).values(lease_owner=None)
    ),
    "INV_002": lambda c, ids: None,  # the UNIQUE constraint makes it impossible to corrupt
    "INV_003": lambda c, ids: c.execute(
        insert(ledger).values(
            effect_key="k",
            job_id=ids["pending"],
            lineage_id=ids["pending"],
            upstream="billing",
            applied_at=FakeClock().now(),
        )
    ),
    "INV_004": lambda c, ids: c.execute(
        update(jobs).where(jobs.c.id == ids["dead"]).values(max_retries=-1)
    ),
    "INV_007": lambda c, ids: c.execute(
        update(attempts).where(attempts.c.job_id == ids["done"]).values(outcome="running")
    ),
    "INV_008": lambda c, ids: c.execute(
        update(jobs).where(jobs.c.id == ids["done"]).values(follow_up=True)
    ),
    "INV_009": lambda c, ids: c.execute(delete(attempts).where(attempts.c.job_id == ids["done"])),
    "INV_010": lambda c, ids: c.execute(
        update(jobs).where(jobs.c.id == ids["dead"]).values(finished_at=None)
    ),
    # The succeeded job files an effect its key says another lineage made.
    "INV_016": lambda c, ids: c.execute(
        insert(ledger).values(
            effect_key=effect_key(ids["done"] + 1, "create", {}),
            job_id=ids["done"],
            lineage_id=ids["done"],
            upstream="billing",
            applied_at=FakeClock().now(),
        )
    ),
    # A next ask left behind for a job that is no longer unanswered (a retry used to do it).
    "INV_017": lambda c, ids: c.execute(
        insert(reconcile_asks).values(
            job_id=ids["done"], asks=1, next_ask_at=FakeClock().now(), last_error="503"
        )
    ),
}


@pytest.mark.parametrize("code", sorted(k for k in CORRUPTIONS if k != "INV_002"))
def test_each_check_finds_its_violation(store: Store, clock: FakeClock, code: str) -> None:
    ids = _scenario(store, clock)
    with store.engine.begin() as conn:
        CORRUPTIONS[code](conn, ids)
    assert code in failing(store)


def test_a_job_filing_several_effects_it_may_not_is_one_violation(
    store: Store, clock: FakeClock
) -> None:
    """A job may file several effects (``Success.also_applied``); INV_003 counts jobs, not rows."""
    ids = _scenario(store, clock)
    with store.engine.begin() as conn:
        for key in ("k-1", "k-2", "k-3"):
            conn.execute(
                insert(ledger).values(
                    effect_key=key,
                    job_id=ids["pending"],
                    lineage_id=ids["pending"],
                    upstream="billing",
                    applied_at=clock.now(),
                )
            )
    [check] = [r for r in run_checks(store) if r.code == "INV_003"]
    assert check.violations == 1


def test_unrecovered_expired_lease_is_flagged_while_a_worker_lives(
    store: Store, clock: FakeClock
) -> None:
    _scenario(store, clock)
    clock.advance(120)  # the running job's 60 s lease is long gone
    with store.engine.begin() as conn:
        conn.execute(update(workers).values(last_heartbeat=clock.now()))
    assert "INV_005" in failing(store)
    store.rescue()
    assert "INV_005" not in failing(store)


@pytest.mark.parametrize(
    ("lineage", "key", "misfiled"),
    [
        (12, effect_key(12, "create", {}), False),  # its own lineage's key
        (12, effect_key(1, "create", {}), True),  # "sb-1-" is a prefix of "sb-12-", not a match
        (1, effect_key(12, "create", {}), True),
        (12, "plugin-made-key", False),  # not an effect_key key: nothing names another lineage
        (12, "sb-7-not-a-digest", False),  # looks like one, is not one
    ],
)
def test_inv_016_reads_the_lineage_out_of_the_key(
    store: Store, lineage: int, key: str, misfiled: bool
) -> None:
    done = store.enqueue(EnqueueRequest("noop", "e", {}, 0)).job
    with store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == done.id).values(state="succeeded"))
        conn.execute(
            insert(ledger).values(
                effect_key=key,
                job_id=done.id,
                lineage_id=lineage,
                upstream="billing",
                applied_at=FakeClock().now(),
            )
        )
    assert ("INV_016" in failing(store)) is misfiled
