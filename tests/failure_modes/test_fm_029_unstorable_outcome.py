"""FM_029: an outcome the database cannot store wedges every outcome behind it.

A handler's exception text is whatever the handler or an upstream put there: a NUL (PostgreSQL
refuses it in text), a lone surrogate (no UTF-8 form: neither driver can send it), a class name
longer than ``attempts.error_class``. Unsafe variant: ``executor.classify`` that stores the text
as it is. The completion flush then fails: a ``DataError`` is taken for an outage and the batch
is tried again forever, with every outcome finished after it; a ``UnicodeEncodeError`` (the
lone surrogate, raised by the driver before sending) kills the worker's loop. Either way a
healthy job finished after it never gets its success recorded. Prevention:
``executor.storable`` writes those characters as backslash escapes and cuts to the column's
size; ``AppliedEffect`` refuses, when made, fields that would not fit the ledger (a terminal
error for that attempt alone).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy.exc import DataError

from syncbridge import executor
from syncbridge.db.lifecycle import DEFAULT_POLICY
from syncbridge.db.queries import Store
from syncbridge.errors import ValidationError
from syncbridge.jobtypes import AppliedEffect, JobContext, JobType, Success
from syncbridge.models import Completion, CompletionResult
from syncbridge.retry import RetryPolicy
from syncbridge.states import TERMINAL_STATES, AttemptOutcome, JobState
from syncbridge.worker import Worker
from tests.failure_modes.support import request, violations
from tests.helpers import fast_settings, registry_with

SETTINGS = fast_settings(shutdown_grace_seconds=0.2)
HOSTILE = "upstream said: \x00 and \udc80 then more"


class HostileError(Exception):
    pass


HostileError.__name__ = "Hostile" + "E" * 300  # longer than attempts.error_class (200)


def hostile(ctx: JobContext) -> None:
    raise HostileError(HOSTILE)


def bad_effect(ctx: JobContext) -> Success:
    return Success(effect=AppliedEffect("sb-key", "billing", upstream_ref="r" * 300))


def run_until_terminal(
    store: Store,
    worker: Worker,
    ids: dict[str, int],
    seconds: float,
    first: Callable[[], None] | None = None,
) -> list[BaseException]:
    """Run ``worker`` on a thread until every job of ``ids`` is terminal, ``seconds`` passed, or
    its loop died; ``first`` runs once it started (it may add jobs to ``ids``). Returns what
    killed the loop, if anything (the unsafe variants may)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    try:
        if first is not None:
            first()
        while time.monotonic() < deadline and thread.is_alive():
            if all(store.get_job(i).state in TERMINAL_STATES for i in ids.values()):
                break
            pause.wait(0.05)
    finally:
        worker.request_stop()
        thread.join(10)
    return errors


def run_jobs(store: Store, seconds: float) -> tuple[dict[str, JobState], list[str]]:
    """A hostile job and a job with an unstorable effect run first; a plain job is enqueued
    once both finished, so that its outcome comes after theirs. The states once all three are
    terminal (or ``seconds`` passed), and the worker's events."""
    events: list[str] = []
    first_two_done = threading.Event()

    def on_event(event: str, fields: dict[str, object]) -> None:
        events.append(event)
        if event == "attempt_finished" and fields.get("entity_id") == "bad-effect":
            first_two_done.set()

    kinds = {"hostile": "hostile", "bad-effect": "bad_effect"}
    ids = {
        entity: store.enqueue(request(entity, job_type=kind, max_retries=0)).job.id
        for entity, kind in kinds.items()
    }
    registry = registry_with(JobType("hostile", hostile), JobType("bad_effect", bad_effect))
    worker = Worker(store, registry, SETTINGS, concurrency=1, on_event=on_event)

    def then_plain() -> None:
        # Not asserted: the unsafe variant's loop may die before the second job finishes.
        first_two_done.wait(seconds)
        ids["plain"] = store.enqueue(request("plain", max_retries=0)).job.id

    errors = run_until_terminal(store, worker, ids, seconds, first=then_plain)
    states = {entity: store.get_job(i).state for entity, i in ids.items()}
    return states, events + [f"crashed: {type(e).__name__}" for e in errors]


def test_repro_outcomes_stored_as_they_are_wedge_the_writer(
    live_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor, "storable", lambda text, limit, keep_end=False: text)
    monkeypatch.setattr(AppliedEffect, "__post_init__", lambda self: None)
    states, events = run_jobs(live_store, seconds=3.0)
    # The hostile outcome never lands, and it takes a healthy job down with it: that job's
    # outcome waits behind it until its lease runs out (and then, max_retries=0, it is dead),
    # or the worker dies before it runs.
    assert states["plain"] in (JobState.PENDING, JobState.RUNNING, JobState.DEAD)
    assert states["hostile"] in (JobState.RUNNING, JobState.DEAD)
    assert any(e == "database_lost" or e.startswith("crashed") for e in events)


def test_prevented_unstorable_text_is_escaped_and_a_bad_effect_fails_alone(
    live_store: Store,
) -> None:
    states, events = run_jobs(live_store, seconds=20.0)
    assert states == {
        "hostile": JobState.DEAD,
        "bad-effect": JobState.FAILED,  # terminal: the plugin's bug, shown at once
        "plain": JobState.SUCCEEDED,
    }
    assert "database_lost" not in events
    [hostile_id] = [j.id for j in live_store.list_jobs(entity_id="hostile")]
    error = live_store.get_job(hostile_id).last_error
    assert error is not None
    assert error["message"] == "upstream said: \\x00 and \\udc80 then more"
    assert error["class"] == ("Hostile" + "E" * 300)[:200]
    assert violations(live_store) == {}


def test_prevented_effect_fields_that_do_not_fit_the_ledger_are_refused() -> None:
    AppliedEffect("sb-1", "billing", "r" * 255)  # at the limits: fine
    for fields in [("", "billing"), ("k" * 256, "billing"), ("k", "b" * 101), ("k", "b", "\x00")]:
        with pytest.raises(ValidationError, match="AppliedEffect"):
            AppliedEffect(*fields)


class RefusingStore(Store):
    """The database refuses one job's success for a reason nobody foresaw (a constraint, a
    trigger, a type): a data error, not an outage."""

    refused: int | None = None

    def complete(
        self, completions: Sequence[Completion], policy: RetryPolicy = DEFAULT_POLICY
    ) -> list[CompletionResult]:
        for c in completions:
            if c.job_id == self.refused and c.outcome is AttemptOutcome.SUCCEEDED:
                raise DataError("UPDATE jobs", None, Exception("a value the database refuses"))
        return super().complete(completions, policy)


class WholeBatchWorker(Worker):
    """Unsafe: a batch that fails is kept whole, whatever the error."""

    def _complete(self, batch: list[Completion]) -> list[CompletionResult]:
        return self.store.complete(batch, self.policy)


def refused_among_others(
    live_store: Store, worker_class: type[Worker], seconds: float
) -> tuple[dict[str, JobState], list[str], Store]:
    """Three jobs; the database refuses b's success. a and c finish only once b's outcome was
    collected, so theirs are written after it (in its batch, or behind it)."""
    store = RefusingStore(live_store.engine)
    b_collected = threading.Event()

    def after_b(ctx: JobContext) -> None:
        if ctx.entity_id != "b" and ctx.attempt == 1:
            assert b_collected.wait(10)

    def on_event(event: str, fields: dict[str, object]) -> None:
        events.append(event)
        if event == "attempt_finished" and fields.get("entity_id") == "b":
            b_collected.set()

    ids = {e: store.enqueue(request(e, job_type="after_b", max_retries=1)).job.id for e in "abc"}
    store.refused = ids["b"]
    events: list[str] = []
    worker = worker_class(
        store,
        registry_with(JobType("after_b", after_b)),
        SETTINGS,
        concurrency=3,
        on_event=on_event,
    )
    run_until_terminal(store, worker, ids, seconds)
    return {e: store.get_job(i).state for e, i in ids.items()}, events, store


def test_repro_a_batch_kept_whole_holds_back_the_outcomes_beside_the_refused_one(
    live_store: Store,
) -> None:
    states, events, _ = refused_among_others(live_store, WholeBatchWorker, seconds=3.0)
    assert states["a"] is not JobState.SUCCEEDED and states["c"] is not JobState.SUCCEEDED
    assert "database_lost" in events  # a data error taken for an outage


def test_prevented_the_refused_outcome_is_recorded_as_an_error_and_the_others_land(
    live_store: Store,
) -> None:
    states, events, store = refused_among_others(live_store, Worker, seconds=20.0)
    assert states == {"a": JobState.SUCCEEDED, "b": JobState.DEAD, "c": JobState.SUCCEEDED}
    assert "database_lost" not in events and events.count("outcome_unstorable") == 2
    [refused] = store.list_jobs(entity_id="b")
    assert refused.last_error is not None and refused.last_error["class"] == "UnstorableOutcome"
    assert [a.outcome for a in store.attempts_of(refused.id)] == ["error", "error"]
    assert violations(store) == {}
