"""Retention run by the worker (``SYNCBRIDGE_RETENTION_SECONDS`` / ``worker --prune-older-than``):
old finished jobs go, what keys, the ledger and replays need stays, and nothing is deleted
while retention is unset."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from syncbridge.clock import FakeClock
from syncbridge.db.queries import Store
from syncbridge.models import Completion, EnqueueRequest
from syncbridge.states import AttemptOutcome
from syncbridge.worker import Worker
from tests.helpers import fast_settings, registry_with

WEEK = 7 * 86400.0


def finish(store: Store, *entities: str, key: str | None = None) -> None:
    for entity in entities:
        store.enqueue(EnqueueRequest("noop", entity, {}, 3, idempotency_key=key))
    for job in store.claim("w", ["noop"], 100, 60):
        store.complete([Completion(job.id, job.attempt, "w", AttemptOutcome.SUCCEEDED)])


@contextmanager
def running(store: Store, retention: float | None) -> Iterator[list[tuple[str, dict[str, object]]]]:
    events: list[tuple[str, dict[str, object]]] = []
    settings = fast_settings(retention_seconds=retention, prune_interval_seconds=0.05)
    worker = Worker(
        store,
        registry_with(),
        settings,
        concurrency=1,
        on_event=lambda name, fields: events.append((name, fields)),
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        yield events
    finally:
        worker.request_stop()
        thread.join(20)
        assert not thread.is_alive()


def entities(store: Store) -> set[str]:
    return {job.entity_id for job in store.list_jobs(limit=1000)}


def test_the_worker_prunes_old_finished_jobs_and_keeps_the_rest(
    store: Store, clock: FakeClock
) -> None:
    finish(store, "old-1", "old-2")
    finish(store, "old-keyed", key="key-1")
    clock.advance(WEEK + 3600)
    finish(store, "young")
    with running(store, WEEK) as events:
        deadline = time.monotonic() + 15
        while entities(store) != {"old-keyed", "young"} and time.monotonic() < deadline:
            time.sleep(0.02)
    assert entities(store) == {"old-keyed", "young"}
    pruned = [fields for name, fields in events if name == "jobs_pruned"]
    assert sum(int(str(fields["count"])) for fields in pruned) == 2


def test_without_retention_the_worker_deletes_nothing(store: Store, clock: FakeClock) -> None:
    finish(store, "old-1", "old-2")
    clock.advance(100 * WEEK)
    settings = fast_settings(retention_seconds=None, prune_interval_seconds=0.05)
    worker = Worker(store, registry_with(), settings, concurrency=1)
    worker._prune()  # what every prune interval runs
    for thread in worker._background.values():
        thread.join(10)
    assert entities(store) == {"old-1", "old-2"}
