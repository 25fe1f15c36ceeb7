"""FM_011: log context leaks from one job to the next through a reused pool thread.

structlog's context lives in context variables, and a pool thread keeps its own context from one
task to the next. Unsafe variant: binding the job's context straight into the pool thread's
context: whatever a handler bound (an invoice id, say) is still there when the same thread runs
the next job, whose lines then name the previous job's invoice. Prevention:
``executor.run_attempt`` runs every attempt in a fresh ``contextvars.Context``.

No storage: the pool and the executor, as ``Worker._start`` uses them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import structlog

from syncbridge import executor
from syncbridge.executor import AttemptReport
from syncbridge.jobtypes import JobContext, JobType
from syncbridge.logs import get_logger


def leaky_run_attempt(job_type: JobType, ctx: JobContext) -> AttemptReport:
    """Unsafe: ``run_attempt`` without the fresh context."""
    return executor._invoke(job_type, ctx)


def context(job_id: int, entity_id: str) -> JobContext:
    return JobContext(
        job_id=job_id,
        job_type="sync_invoice",
        entity_id=entity_id,
        payload={},
        attempt=1,
        correlation_id=f"corr-{job_id}",
        lineage_id=job_id,
        worker_id="w1",
        deadline=datetime(2030, 1, 1, tzinfo=UTC),
        log=get_logger(),
    )


def sync_invoice(ctx: JobContext) -> None:
    log = structlog.get_logger()
    if ctx.entity_id.startswith("i_"):  # only invoices have a CRM invoice id to bind
        structlog.contextvars.bind_contextvars(crm_invoice_id=ctx.entity_id)
    log.info("billing_call", path="/invoices")


def run_two_jobs(run: Callable[[JobType, JobContext], AttemptReport]) -> list[dict[str, Any]]:
    """An invoice job, then a customer job, on the one thread of a pool."""
    job_type = JobType("sync_invoice", sync_invoice)
    with (
        structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]
        ) as captured,
        ThreadPoolExecutor(1, thread_name_prefix="syncbridge-handler") as pool,
    ):
        for job_id, entity in ((1, "i_2001"), (2, "c_1001")):
            report = pool.submit(run, job_type, context(job_id, entity)).result()
            assert report.outcome == "succeeded"
    return [dict(line) for line in captured if line["event"] == "billing_call"]


def test_repro_binding_in_the_pool_threads_context_leaks_into_the_next_job() -> None:
    first, second = run_two_jobs(leaky_run_attempt)
    assert first["job_id"] == 1 and first["crm_invoice_id"] == "i_2001"
    assert second["job_id"] == 2 and second["entity_id"] == "c_1001"
    assert second["crm_invoice_id"] == "i_2001"  # job 2's line names job 1's invoice


def test_prevented_fresh_context_per_attempt() -> None:
    first, second = run_two_jobs(executor.run_attempt)
    assert first["job_id"] == 1 and first["crm_invoice_id"] == "i_2001"
    assert second["job_id"] == 2 and second["correlation_id"] == "corr-2"
    assert "crm_invoice_id" not in second
    # Nor does anything leak out to the thread that submitted the work.
    assert structlog.contextvars.get_contextvars() == {}
