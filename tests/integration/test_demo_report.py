"""The demo's verdict (``syncbridge demo`` ends with it): Billing's applied keys against the
ledger, both ways. A stand-in for the mock servers gives Billing's side."""

from __future__ import annotations

from typing import Any

import pytest

from syncbridge.cli.demo import _report
from syncbridge.db.queries import Store
from syncbridge.jobtypes import AppliedEffect, effect_key
from syncbridge.models import Completion, EnqueueRequest
from syncbridge.states import AttemptOutcome


class BillingSaid:
    def __init__(self, effects: dict[str, int]) -> None:
        self.effects = effects

    def get(self, service: str, path: str) -> dict[str, Any]:
        assert (service, path) == ("billing", "/_stats")
        return {"effects": self.effects}


def succeed_with(store: Store, effect_name: str) -> tuple[int, str]:
    store.enqueue(EnqueueRequest("noop", "c_1", {}, 0))
    [job] = store.claim("w", ["noop"], 1, 60)
    key = effect_key(job.id, effect_name, {})
    effect = AppliedEffect(key, "billing", "c_1")
    store.complete([Completion(job.id, job.attempt, "w", AttemptOutcome.SUCCEEDED, None, effect)])
    return job.id, key


def test_every_key_applied_once_and_filed_passes(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    _, key = succeed_with(store, "upsert")
    assert _report(store, BillingSaid({key: 1})) is True  # type: ignore[arg-type]
    assert "(1 keys; 1 in the ledger)" in capsys.readouterr().err


def test_an_effect_of_a_succeeded_lineage_missing_from_the_ledger_fails(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id, key = succeed_with(store, "upsert")
    unfiled = effect_key(job_id, "on_the_way", {})  # applied, never reported (FM_033)
    elsewhere = effect_key(job_id + 1000, "create", {})  # a lineage with no success here
    assert _report(store, BillingSaid({key: 1, unfiled: 1, elsewhere: 1})) is False  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "applied by Billing for a succeeded lineage, not in the ledger" in err
    assert unfiled in err and elsewhere not in err


def test_a_key_applied_twice_fails(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    _, key = succeed_with(store, "upsert")
    assert _report(store, BillingSaid({key: 2})) is False  # type: ignore[arg-type]
    assert f"{key} applied 2 times" in capsys.readouterr().err
