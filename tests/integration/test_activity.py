"""The dashboard's activity chart: attempts counted by the 5-minute interval they started in,
by outcome, on both backends, with the injected clock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from syncbridge.api.activity import BUCKET, BUCKETS, chart, last_hour
from syncbridge.clock import FakeClock
from syncbridge.db.queries import Store
from syncbridge.db.schema import attempts
from syncbridge.models import Completion, EnqueueRequest, ErrorSnapshot
from syncbridge.states import AttemptOutcome

W = "worker-1"


def _start_attempt(store: Store, entity: str) -> tuple[int, int]:
    store.enqueue(EnqueueRequest("noop", entity, {}, 3))
    (job,) = store.claim(W, ["noop"], 1, 3600)
    return job.id, job.attempt


def _end(store: Store, attempt: tuple[int, int], outcome: AttemptOutcome) -> None:
    error = None
    if outcome is not AttemptOutcome.SUCCEEDED:
        error = ErrorSnapshot("UpstreamUnavailable", "503", outcome is AttemptOutcome.ERROR, 503)
    store.complete([Completion(attempt[0], attempt[1], W, outcome, error=error)])


def test_attempts_fall_in_the_interval_they_started_in(store: Store, clock: FakeClock) -> None:
    # One attempt just before the window, then attempts at 0, 4:59 (first interval), 5:00
    # (second), 30:00 and at "now" (the last interval includes its end).
    origin = clock.now()
    _start_attempt(store, "too-old")
    clock.advance(1)
    minutes = [0, 4 + 59 / 60, 5, 30, 60]
    started = []
    for n, minute in enumerate(minutes):
        target = origin + timedelta(seconds=1) + timedelta(minutes=minute)
        clock.advance((target - clock.now()).total_seconds())
        started.append(_start_attempt(store, f"e{n}"))
    _end(store, started[0], AttemptOutcome.SUCCEEDED)
    _end(store, started[1], AttemptOutcome.FAILED)
    _end(store, started[2], AttemptOutcome.ERROR)
    _end(store, started[3], AttemptOutcome.SUCCEEDED)
    # started[4] is still running: it counts, as running, in the last interval.
    buckets = last_hour(store)
    assert len(buckets) == BUCKETS
    assert buckets[0].start == clock.now() - BUCKET * BUCKETS
    by_interval = [(b.succeeded, b.failed, b.running, b.started) for b in buckets]
    expected = [(0, 0, 0, 0)] * BUCKETS
    expected[0] = (1, 1, 0, 2)
    expected[1] = (0, 1, 0, 1)
    expected[6] = (1, 0, 0, 1)
    expected[11] = (0, 0, 1, 1)
    assert by_interval == expected
    drawn = chart(buckets)
    assert drawn.total == 5 and drawn.peak == 2
    assert drawn.failure_rate == 2 / 4  # of the four that ended


def test_an_attempt_that_ends_much_later_stays_in_its_start_interval(
    store: Store, clock: FakeClock
) -> None:
    attempt = _start_attempt(store, "slow")
    clock.advance(50 * 60)
    _end(store, attempt, AttemptOutcome.SUCCEEDED)
    buckets = last_hour(store)
    # The window opened 10 minutes before it started: the third interval.
    assert [b.started for b in buckets] == [0, 0, 1] + [0] * 9
    assert buckets[2].succeeded == 1
    clock.advance(20 * 60)  # it started more than an hour ago, though it ended 20 minutes ago
    assert sum(b.started for b in last_hour(store)) == 0


def test_released_and_cancelled_count_as_neither_success_nor_failure(
    store: Store, clock: FakeClock
) -> None:
    first = _start_attempt(store, "a")
    _start_attempt(store, "b")
    with store.engine.begin() as conn:
        conn.execute(
            update(attempts)
            .where(attempts.c.job_id == first[0])
            .values(outcome=AttemptOutcome.RELEASED, finished_at=clock.now())
        )
    (bucket,) = [b for b in last_hour(store) if b.started]
    assert (bucket.other, bucket.running, bucket.failure_rate) == (1, 1, None)
