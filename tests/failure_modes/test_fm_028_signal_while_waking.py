"""FM_028: a SIGTERM that lands while the worker's loop holds its wake-up event's lock.

Python runs a signal handler on the main thread, which is the worker's loop, between two
bytecodes: possibly inside ``threading.Event.wait``, ``set`` or ``clear`` of the loop's ``_wake``,
whose lock cannot be taken twice. Unsafe variant: the handler calls ``Worker.request_stop``,
which sets ``_wake``: it waits forever for a lock its own thread holds, and only SIGKILL ends the
worker (in-flight jobs then come back charged, as lease expirations). Prevention: the handler
calls ``request_stop_from_signal``, which only sets a flag; the loop turns it into a stop within
one poll interval.

The hold is reproduced exactly: a thread takes ``_wake``'s lock, as the loop does inside
``clear()``, and runs the handler's body there, as the signal would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from syncbridge.db.queries import Store
from syncbridge.jobtypes import JobType
from syncbridge.states import JobState
from syncbridge.worker import Worker
from tests.failure_modes.support import request, violations
from tests.helpers import fast_settings, registry_with

SETTINGS = fast_settings(poll_interval_seconds=0.05, shutdown_grace_seconds=0.5)


def handler_runs_while_the_loop_holds_wake(worker: Worker, handler: Callable[[], None]) -> bool:
    """Whether ``handler`` returns when run while its thread holds ``_wake``'s lock."""
    done = threading.Event()

    def loop_inside_wake_clear() -> None:
        with worker._wake._cond:  # what Event.clear/set/wait hold while the signal lands
            handler()
            done.set()

    # Daemon: in the unsafe variant it never ends, and must not keep pytest alive.
    threading.Thread(target=loop_inside_wake_clear, daemon=True).start()
    return done.wait(2.0)


def test_repro_a_handler_that_sets_the_wake_event_hangs_the_worker(store: Store) -> None:
    worker = Worker(store, registry_with(), SETTINGS)
    assert not handler_runs_while_the_loop_holds_wake(worker, worker.request_stop)


def test_prevented_the_signal_path_takes_no_lock_and_the_worker_stops(live_store: Store) -> None:
    worker = Worker(live_store, registry_with(), SETTINGS)
    assert handler_runs_while_the_loop_holds_wake(worker, worker.request_stop_from_signal)

    # And the flag alone stops a running worker, after the job it ran was recorded.
    ran = threading.Event()
    job = live_store.enqueue(request("before-the-signal", job_type="flag")).job
    registry = registry_with(JobType("flag", lambda ctx: ran.set()))
    running = Worker(live_store, registry, SETTINGS)
    thread = threading.Thread(target=running.run)
    thread.start()
    try:
        assert ran.wait(20)
        running.request_stop_from_signal()
    finally:
        thread.join(20)
    assert not thread.is_alive()
    assert live_store.get_job(job.id).state is JobState.SUCCEEDED
    assert violations(live_store) == {}
