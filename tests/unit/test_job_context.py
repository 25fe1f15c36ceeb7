"""JobContext's stop signal, made lazily: whichever thread comes first (the loop stopping the
attempt, or the handler waiting), a stop is never missed and a waiter always wakes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from syncbridge.jobtypes import JobContext, effect_key, effect_key_lineage


def context() -> JobContext:
    return JobContext(
        job_id=1,
        job_type="noop",
        entity_id="e",
        payload={},
        attempt=1,
        correlation_id="c",
        lineage_id=1,
        worker_id="w",
        deadline=datetime(2030, 1, 1, tzinfo=UTC),
        log=None,
    )


def test_not_stopped_until_asked_and_the_first_reason_stays() -> None:
    ctx = context()
    assert not ctx.cancel_requested and ctx.stop_reason is None
    assert ctx.wait_for_stop(0) is False
    ctx.request_stop("cancelled")
    ctx.request_stop("timeout")
    assert ctx.cancel_requested and ctx.stop_reason == "cancelled"
    assert ctx.wait_for_stop(0) is True


def test_a_stop_requested_before_anyone_waits_is_seen_by_the_waiter() -> None:
    ctx = context()
    ctx.request_stop("lease_lost")
    assert ctx.wait_for_stop(30) is True  # returns at once, not after 30 s


def _wait_then_record(ctx: JobContext, start: threading.Barrier, woke: list[bool]) -> None:
    start.wait()
    woke.append(ctx.wait_for_stop(10))


@pytest.mark.parametrize("rounds", [200])
def test_a_waiter_always_wakes_whichever_thread_makes_the_signal(rounds: int) -> None:
    """The race the lazy signal opens: the stopper and the waiter both find no signal and each
    make one. Both must end up on the same one, or the waiter sleeps out its whole timeout."""
    for _ in range(rounds):
        ctx = context()
        start = threading.Barrier(2)
        woke: list[bool] = []

        waiter = threading.Thread(target=_wait_then_record, args=(ctx, start, woke))
        waiter.start()
        start.wait()
        ctx.request_stop("timeout")
        waiter.join(5)
        assert not waiter.is_alive(), "the waiter missed the stop"
        assert woke == [True]


@pytest.mark.parametrize("lineage", [1, 7, 10, 123456789012345])
def test_the_lineage_is_read_back_from_the_keys_effect_key_makes(lineage: int) -> None:
    for body in ({}, {"a": [1, "x"]}, "text"):
        assert effect_key_lineage(effect_key(lineage, "upsert_customer", body)) == lineage


@pytest.mark.parametrize(
    "key",
    [
        "sb-0007-" + "a" * 32,  # leading zero: not a key effect_key writes (it would read as 7)
        "sb-0-" + "a" * 32,
        "sb-7-" + "A" * 32,
        "sb-7-" + "a" * 31,
        "sb-7-" + "a" * 33,
        "sb--7-" + "a" * 32,
        "sb-7-" + "a" * 32 + "\n",
        "reconciled-7-i_2001",
        "",
    ],
)
def test_keys_made_otherwise_name_no_lineage(key: str) -> None:
    assert effect_key_lineage(key) is None
