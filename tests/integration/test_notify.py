"""PostgreSQL wakes idle workers with NOTIFY: a job enqueued while a worker sleeps through a
long poll interval starts long before that interval ends."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine

from syncbridge.db.queries import Store
from syncbridge.models import EnqueueRequest
from syncbridge.states import JobState
from syncbridge.worker import Worker
from tests.conftest import truncate
from tests.helpers import fast_settings, registry_with
from tests.processes import wait_for

POLL_SECONDS = 60.0  # without a notification the worker would not look again for a minute


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True, scope="module")
def test_enqueue_wakes_an_idle_worker(engine: Engine) -> None:
    truncate(engine)
    store = Store(engine)
    worker = Worker(
        store,
        registry_with(),
        fast_settings(
            poll_interval_seconds=POLL_SECONDS,
            rescue_interval_seconds=POLL_SECONDS,
            job_lease_seconds=300,
        ),
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        # Registered means its first poll is under way or done; from then on only a
        # notification can wake it before a minute has passed.
        wait_for(lambda: bool(store.live_workers()), 10, "the worker to start")
        job = store.enqueue(EnqueueRequest("noop", "wake-me", {}, 0)).job
        wait_for(
            lambda: store.get_job(job.id).state is JobState.SUCCEEDED,
            POLL_SECONDS / 4,
            "the notified worker to run the job",
        )
    finally:
        worker.request_stop()
        thread.join(30)
    assert not thread.is_alive()
