"""Helpers for plugin authors: run a job type's handler through the real engine (a throwaway
SQLite file, a burst worker) against mocked upstreams, and look at what happened.

::

    import respx
    from syncbridge.testing import run_job

    with respx.mock:  # intercepts every httpx client, ours included
        respx.get("http://crm.test/customers/c_1").respond(json={...})
        respx.put("http://billing.test/customers/c_1").respond(json={})
        run = run_job(my_job_type, "c_1", max_retries=2)
    assert run.job.state == "succeeded" and len(run.ledger) == 1
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from syncbridge import migrate
from syncbridge.config import Settings
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.jobtypes import JobType
from syncbridge.models import Attempt, EnqueueRequest, Job
from syncbridge.plugins import Registry
from syncbridge.upstream import build_upstreams, close_upstreams
from syncbridge.worker import Worker

FAST = {
    "job_backoff_seconds_base": 0.0,
    "poll_interval_seconds": 0.01,
    "rescue_interval_seconds": 0.1,
    "crm_url": "http://crm.test",
    "billing_url": "http://billing.test",
}


@dataclass(frozen=True)
class JobRun:
    job: Job
    attempts: list[Attempt]
    ledger: list[dict[str, Any]]


def run_job(
    job_type: JobType,
    entity_id: str,
    payload: dict[str, Any] | None = None,
    *,
    transports: Mapping[str, httpx.BaseTransport] | None = None,
    max_retries: int = 0,
    correlation_id: str | None = None,
    settings: Settings | None = None,
) -> JobRun:
    """Enqueue one job of ``job_type`` and run it (with its retries, without backoff) to the
    end. Upstreams ``crm`` and ``billing`` go through ``transports`` (e.g. respx's mock
    transport or ``httpx.MockTransport``), at ``http://crm.test`` and ``http://billing.test``."""
    settings = settings or Settings(**FAST)  # type: ignore[arg-type]
    # A throwaway SQLite file, like production's, rather than one in-memory connection that
    # every pool checkout would share.
    folder = tempfile.mkdtemp(prefix="syncbridge-run-job-")
    store = Store(make_engine(f"sqlite:///{Path(folder) / 'jobs.db'}"))
    migrate.upgrade(store.engine)
    registry = Registry(job_types={job_type.name: job_type}, plugins={"test": [job_type.name]})
    job = store.enqueue(
        EnqueueRequest(
            job_type.name, entity_id, payload or {}, max_retries, correlation_id=correlation_id
        )
    ).job
    upstreams = build_upstreams(settings, transports)
    try:
        Worker(store, registry, settings, concurrency=1, burst=True, upstreams=upstreams).run()
    finally:
        close_upstreams(upstreams)
    try:
        return JobRun(
            store.get_job(job.id),
            store.attempts_of(job.id),
            store.ledger_rows(job.effective_lineage_id),
        )
    finally:
        store.engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)
