"""FM_032: a paused worker sends an effect after its lease ran out (found by a crash drill).

A worker process is paused (SIGSTOP, a frozen VM or container, heavy swapping) in the middle of
a handler, before its effectful call. Its renewals stop; another worker rescues the job, which
ends ``dead`` (no retries left), and reconcile rightly finds nothing applied: ``not_applied``,
final. Then the process resumes and the handler thread, which never heard of any of it, sends
the call: Billing applies it, the job says ``not_applied`` and has no ledger row, ``check``
passes. Fencing keeps the late *completion* out of the database; nothing kept the late *call*
from leaving.

Unsafe variant: a ``JobContext`` whose ``cancel_requested`` knows only stops the loop thread
asked for. Prevention: the context knows until when its lease holds (``lease_held_until``, set
from when the claim and each kept renewal were sent) and ``cancel_requested`` turns true once
that has passed, so a handler checking it before its call does not send.

Real worker loop in a thread with a tiny lease; the pause is the handler blocking on a gate
while its worker's renewals never land (as for a paused process: nothing renews), the rescue
and reconcile happening meanwhile.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from syncbridge.db.queries import Store
from syncbridge.jobtypes import AppliedEffect, JobContext, JobType, Success
from syncbridge.reconcile import reconcile
from syncbridge.states import JobState
from syncbridge.worker import Worker
from tests.failure_modes.support import request, violations
from tests.helpers import fast_settings, registry_with
from tests.processes import wait_for

WAIT = 20.0


class PausedWorker(Worker):
    """The trigger: like a paused process, nothing renews this worker's leases."""

    def _renew(self) -> None:
        pass


class Upstream:
    """A stand-in Billing: what was sent, and the reconciler that asks it."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.gate = threading.Event()  # the process "resumes" when the test sets it
        self.checked: list[str | None] = []

    def handler(self, ctx: JobContext) -> Success | None:
        self.gate.wait(WAIT)  # paused mid-handler, deaf to stop requests
        if ctx.cancel_requested:  # what the plugins do before each effectful call
            self.checked.append(ctx.stop_reason)
            return None
        key = ctx.effect_key("upsert", {})
        self.applied.append(key)  # the call leaves the process and is applied
        return Success(effect=AppliedEffect(key, "billing", ctx.entity_id))

    def reconciler(self, ctx: JobContext) -> AppliedEffect | None:
        key = ctx.effect_key("upsert", {})
        return AppliedEffect(key, "billing", ctx.entity_id) if key in self.applied else None


def pause_through_rescue_and_reconcile(store: Store, upstream: Upstream) -> tuple[int, Any]:
    kind = JobType("sync", upstream.handler, reconcile=upstream.reconciler)
    registry = registry_with(kind)
    job = store.enqueue(request("c_paused", job_type="sync", max_retries=0)).job
    settings = fast_settings(job_lease_seconds=0.5, rescue_interval_seconds=0.05)
    worker = PausedWorker(store, registry, settings, concurrency=1)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: store.get_job(job.id).state is JobState.DEAD, WAIT, "the rescue")
        [result] = reconcile(store, registry, {}, settle_seconds=0)
        assert result.effect_status == "not_applied"  # true at this moment, and final
        upstream.gate.set()  # the process resumes
        wait_for(lambda: upstream.applied or upstream.checked, WAIT, "the handler to go on")
    finally:
        upstream.gate.set()
        worker.request_stop()
        thread.join(WAIT)
    return job.id, registry


def test_repro_a_paused_handler_sends_after_its_job_was_rescued_and_reconciled(
    live_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Unsafe variant: only stops the loop thread asked for count.
    monkeypatch.setattr(
        JobContext,
        "cancel_requested",
        property(lambda ctx: ctx._stop is not None and ctx._stop.is_set()),
    )
    upstream = Upstream()
    job_id, _ = pause_through_rescue_and_reconcile(live_store, upstream)
    assert len(upstream.applied) == 1  # applied upstream after the job was given up on
    job = live_store.get_job(job_id)
    assert (job.state, job.effect_status) == (JobState.DEAD, "not_applied")
    assert live_store.ledger_rows() == []
    assert violations(live_store) == {}  # and nothing in the database says so


def test_prevented_a_paused_handler_sees_its_lease_ran_out_and_does_not_send(
    live_store: Store,
) -> None:
    upstream = Upstream()
    job_id, _ = pause_through_rescue_and_reconcile(live_store, upstream)
    assert upstream.applied == []
    assert upstream.checked == ["lease expired"]
    job = live_store.get_job(job_id)
    assert (job.state, job.effect_status) == (JobState.DEAD, "not_applied")  # and true
    assert violations(live_store) == {}


def test_a_handler_whose_leases_are_renewed_is_never_told_they_ran_out(live_store: Store) -> None:
    """The other side: a handler running three leases long on a healthy worker keeps its lease
    (each kept renewal moves ``lease_held_until``) and is never stopped."""
    seen: list[bool] = []

    def long_handler(ctx: JobContext) -> None:
        for _ in range(30):  # about 1.5 s against a 0.5 s lease
            seen.append(ctx.cancel_requested)
            threading.Event().wait(0.05)

    job = live_store.enqueue(request("c_long", job_type="long", max_retries=0)).job
    settings = fast_settings(job_lease_seconds=0.5, rescue_interval_seconds=0.05)
    worker = Worker(live_store, registry_with(JobType("long", long_handler)), settings)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: live_store.get_job(job.id).state is JobState.SUCCEEDED, WAIT, "success")
    finally:
        worker.request_stop()
        thread.join(WAIT)
    assert len(seen) == 30 and not any(seen)


def test_cancel_requested_turns_true_once_the_lease_has_run_out() -> None:
    import time
    from datetime import UTC, datetime

    ctx = JobContext(1, "t", "e", {}, 1, "c", 1, "w", datetime(2030, 1, 1, tzinfo=UTC), None)
    assert not ctx.cancel_requested  # no lease known (a reconciler's context): never
    ctx.lease_held_until = time.monotonic() + 60
    assert not ctx.cancel_requested and ctx.stop_reason is None
    ctx.lease_held_until = time.monotonic() - 0.001
    assert ctx.cancel_requested and ctx.stop_reason == "lease expired"
    assert ctx.wait_for_stop(0)  # waiters wake too
