"""FM_031: correlation ids that grow with every derived job until they no longer fit.

A follow-up's correlation id was its parent's plus ``~follow-up``, a replay's its source's plus
``~replay-<8 hex>``. An entity that keeps changing while its jobs run makes a follow-up of a
follow-up of ...: each generation 10 characters longer, until the column's 200 no longer hold it.
Then the success that must enqueue the follow-up cannot be stored on PostgreSQL (the worker
records it as unstorable and runs the job again, forever; the rescue that carries such a
follow-up fails as a whole, and with it every other expired lease), and SQLite stores ids past
the column's width. Unsafe variant: the old derivation. Prevention:
``models.derived_correlation_id`` keeps the chain's first id, drops earlier derivations'
suffixes, and cuts to fit.
"""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from syncbridge.db.queries import Store
from syncbridge.models import (
    CORRELATION_ID_MAX,
    Completion,
    EnqueueRequest,
    derived_correlation_id,
)
from syncbridge.states import AttemptOutcome, JobState
from tests.failure_modes.support import violations

ROOT = "r" * 181  # a caller's id: a long one makes the break come in two generations


def follow_up_generation(store: Store, entity: str) -> int:
    """Run the entity's pending job while a change for it arrives; returns the follow-up's id."""
    (job,) = store.claim("w", ["noop"], 1, 60)
    marked = store.enqueue(EnqueueRequest("noop", entity, {"changed": job.id}, 3))
    assert marked.follow_up_marked
    [result] = store.complete([Completion(job.id, job.attempt, "w", AttemptOutcome.SUCCEEDED)])
    assert result.follow_up_job_id is not None
    return result.follow_up_job_id


def test_repro_appending_a_suffix_per_generation_outgrows_the_column(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "syncbridge.db.enqueue.derived_correlation_id", lambda parent, suffix: f"{parent}~{suffix}"
    )
    store.enqueue(EnqueueRequest("noop", "busy", {}, 3, correlation_id=ROOT))
    first = store.get_job(follow_up_generation(store, "busy"))
    assert len(first.correlation_id) == 191
    if store.dialect == "postgresql":
        with pytest.raises(DBAPIError, match="too long"):
            follow_up_generation(store, "busy")  # the success cannot be stored
        assert store.get_job(first.id).state is JobState.RUNNING
    else:  # SQLite does not enforce the width: ids simply keep growing
        second = store.get_job(follow_up_generation(store, "busy"))
        assert len(second.correlation_id) > CORRELATION_ID_MAX


def test_prevented_derived_ids_keep_the_chains_first_id_and_fit(store: Store) -> None:
    store.enqueue(EnqueueRequest("noop", "busy", {}, 3, correlation_id=ROOT))
    ids = [store.get_job(follow_up_generation(store, "busy")).correlation_id for _ in range(30)]
    assert set(ids) == {ROOT + "~follow-up"}  # every generation: the caller's id, one suffix
    # Replays of replays: each its own id (reconcile tells them apart by it), none longer.
    (job,) = store.claim("w", ["noop"], 1, 60)
    store.complete([Completion(job.id, job.attempt, "w", AttemptOutcome.FAILED)])
    replays, source = [], job.id
    for _ in range(12):
        replay = store.replay(source)
        (claimed,) = store.claim("w", ["noop"], 1, 60)
        store.complete([Completion(claimed.id, claimed.attempt, "w", AttemptOutcome.FAILED)])
        replays.append(replay.correlation_id)
        source = replay.id
    assert len(set(replays)) == len(replays)
    assert all(r.startswith(ROOT + "~replay-") and len(r) <= CORRELATION_ID_MAX for r in replays)
    assert violations(store) == {}


@pytest.mark.parametrize(
    ("parent", "suffix", "expected"),
    [
        ("req-42", "follow-up", "req-42~follow-up"),
        ("req-42~follow-up~follow-up", "follow-up", "req-42~follow-up"),
        ("req-42~replay-0123abcd~follow-up", "replay-deadbeef", "req-42~replay-deadbeef"),
        ("a~b", "follow-up", "a~b~follow-up"),  # a caller's own "~" stays
        ("x~replay-XYZ", "follow-up", "x~replay-XYZ~follow-up"),  # not one of ours: kept
        ("c" * 200, "follow-up", "c" * 190 + "~follow-up"),  # cut to fit
    ],
)
def test_derived_correlation_ids(parent: str, suffix: str, expected: str) -> None:
    assert derived_correlation_id(parent, suffix) == expected
    assert len(derived_correlation_id(parent, suffix)) <= CORRELATION_ID_MAX
