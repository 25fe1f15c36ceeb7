"""The completion writer: every outcome handed in is written once, in order, kept across a
lost database, and an error the write lets through reaches the loop thread."""

from __future__ import annotations

import threading

import pytest

from syncbridge.completion_writer import CompletionWriter
from syncbridge.models import Completion, CompletionResult
from syncbridge.states import AttemptOutcome, JobState

WAIT = 10.0


def completion(job_id: int) -> Completion:
    return Completion(job_id, 1, "w", AttemptOutcome.SUCCEEDED)


def result(c: Completion) -> CompletionResult:
    return CompletionResult(c.job_id, c.attempt, True, JobState.SUCCEEDED)


def collect(writer: CompletionWriter, wake: threading.Event, count: int) -> list[int]:
    seen: list[int] = []
    while len(seen) < count:
        assert wake.wait(WAIT), f"{len(seen)} of {count} written"
        wake.clear()
        seen.extend(r.job_id for r in writer.take_results())
    return seen


def test_everything_is_written_once_in_order_across_a_lost_database() -> None:
    written: list[int] = []
    down = {"left": 3}

    def write(batch: list[Completion]) -> list[CompletionResult] | None:
        if down["left"] > 0:
            down["left"] -= 1
            return None  # what Worker._db returns while the database is away
        written.extend(c.job_id for c in batch)
        return [result(c) for c in batch]

    wake = threading.Event()
    writer = CompletionWriter(write, wake.set, retry_seconds=0.001)
    for start in range(0, 50, 10):
        writer.submit([completion(n) for n in range(start, start + 10)])
    assert collect(writer, wake, 50) == list(range(50))
    assert written == list(range(50))
    assert writer.outstanding == 0
    writer.stop(WAIT)


def test_an_error_the_write_lets_through_is_raised_on_the_loop_thread() -> None:
    def write(batch: list[Completion]) -> list[CompletionResult] | None:
        raise RuntimeError("not a database outage")

    wake = threading.Event()
    writer = CompletionWriter(write, wake.set, retry_seconds=0.001)
    writer.submit([completion(1)])
    assert wake.wait(WAIT)
    with pytest.raises(RuntimeError, match="not a database outage"):
        writer.take_results()
    assert writer.outstanding == 1  # not written: the loop knows it is still owed


def test_stop_writes_what_was_queued() -> None:
    gate = threading.Event()

    def write(batch: list[Completion]) -> list[CompletionResult] | None:
        gate.wait(WAIT)
        return [result(c) for c in batch]

    writer = CompletionWriter(write, lambda: None, retry_seconds=0.001)
    writer.submit([completion(1)])
    writer.submit([completion(2), completion(3)])
    gate.set()
    writer.stop(WAIT)
    assert sorted(r.job_id for r in writer.take_results()) == [1, 2, 3]
    assert writer.outstanding == 0


def _writer_down_until(attempts_down: int | None) -> tuple[CompletionWriter, list[int]]:
    """A writer whose database is away for ``attempts_down`` writes (None: for good), with five
    outcomes handed in and not yet written."""
    written: list[int] = []
    calls = {"n": 0}
    gate = threading.Event()

    def write(batch: list[Completion]) -> list[CompletionResult] | None:
        gate.wait(WAIT)  # nothing is written before stop() is called
        calls["n"] += 1
        if attempts_down is None or calls["n"] <= attempts_down:
            return None
        written.extend(c.job_id for c in batch)
        return [result(c) for c in batch]

    writer = CompletionWriter(write, lambda: None, retry_seconds=0.01)
    writer.submit([completion(n) for n in range(5)])
    gate.set()
    return writer, written


def test_stopping_keeps_trying_while_the_database_comes_back() -> None:
    # A SIGTERM during a short outage: the outcomes still land within the grace period.
    writer, written = _writer_down_until(3)
    writer.stop(WAIT)
    assert written == list(range(5))
    assert writer.unwritten() == []


def test_stopping_reports_what_it_could_not_write() -> None:
    # Before, the first failed try after stop() ended the thread and the outcomes were gone
    # without a word; now they are handed back for the worker to report.
    writer, written = _writer_down_until(None)
    writer.stop(0.1)
    assert written == []
    assert [c.job_id for c in writer.unwritten()] == list(range(5))


def test_a_write_still_blocked_when_stop_gives_up_is_reported_too() -> None:
    # A database that stops answering (a partition, not a refusal): the write in progress
    # blocks past stop()'s timeout. Its batch is neither written nor queued; it must still be
    # among what the worker reports as unwritten (a review found it was not).
    release = threading.Event()
    calls = {"n": 0}

    def write(batch: list[Completion]) -> list[CompletionResult] | None:
        calls["n"] += 1
        if calls["n"] == 1:
            return None  # refused: kept, tried again
        release.wait(WAIT)  # hangs until the test lets go
        return [result(c) for c in batch]

    writer = CompletionWriter(write, lambda: None, retry_seconds=0.01)
    writer.submit([completion(n) for n in range(3)])
    writer.stop(0.2)
    try:
        assert writer.take_results() == []
        assert [c.job_id for c in writer.unwritten()] == [0, 1, 2]
    finally:
        release.set()
