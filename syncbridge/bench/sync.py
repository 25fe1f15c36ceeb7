"""``sync``: customer sync (CRM -> Billing) through the real mock servers at a set latency and
fault rate, with the ``customer`` job type from its plugin."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

import httpx

from syncbridge.bench import measure
from syncbridge.bench.options import Options
from syncbridge.bench.procs import CpuSampler, Proc, mocks, wait_exit, workers
from syncbridge.bench.result import BenchError, Result, percentile, rounded
from syncbridge.bench.sandbox import sandbox
from syncbridge.clock import SystemClock
from syncbridge.models import EnqueueRequest
from syncbridge.plugins import load_registry

JOB_TYPE = "customer"
# c_1001 ... c_1999 exist; c_1002 is the mocks' rate-limited customer (429 + Retry-After).
ENTITIES = [f"c_{n}" for n in range(1001, 2000) if n != 1002]


def require_job_type() -> None:
    if JOB_TYPE not in load_registry().job_types:
        raise BenchError(
            "sync needs the `customer` job type, and no installed plugin provides it "
            "(install the customer plugin, e.g. `pip install -e plugins/customer`)"
        )


def sync(opts: Options) -> list[Result]:
    require_job_type()
    count = opts.jobs_for("sync")
    if count > len(ENTITIES):
        raise BenchError(f"sync: at most {len(ENTITIES)} jobs (one per mock customer)")
    latency, faults = opts.sync_latency_ms, opts.sync_fault_rate
    with sandbox(opts.database_url, "sync") as box, mocks(opts.work_dir, latency, faults) as up:
        crm, billing = up.crm_url, up.billing_url
        requests = (EnqueueRequest(JOB_TYPE, entity, {}, 3) for entity in ENTITIES[:count])
        measure.enqueue_bulk(box.store, requests)
        opts.progress(
            f"sync: {count} customers, {opts.processes} x {opts.concurrency} workers, "
            f"upstream latency {latency} ms, fault rate {faults:g} ({box.backend})"
        )
        started = SystemClock().now()
        upstreams = {
            "SYNCBRIDGE_CRM_URL": crm,
            "SYNCBRIDGE_BILLING_URL": billing,
            # A retry (a fault, or a transient transport error) is due at once: a burst worker
            # exits when nothing is due, and would leave a retry scheduled seconds later
            # pending. Retries show in the result as attempts beyond the job count.
            "SYNCBRIDGE_JOB_BACKOFF_SECONDS_BASE": "0.01",
        }

        def burst_workers() -> AbstractContextManager[list[Proc]]:
            return workers(
                box.url,
                opts.processes,
                opts.concurrency,
                opts.work_dir,
                job_types=(JOB_TYPE,),
                env=upstreams,
                args=opts.worker_args,
            )

        deadline = time.monotonic() + opts.timeout
        # The bound's "profile": who used the CPU while the jobs ran.
        with (
            burst_workers() as running,
            CpuSampler({"workers": running, "mocks": [up.proc]}) as cpu,
        ):
            wait_exit(running, opts.timeout)
        # A retry due a few milliseconds after the last burst worker looked (a transient
        # transport error) is left pending when it exits: start them again for it.
        rounds = 1
        while measure.job_states(box.reader, JOB_TYPE).get("pending"):
            if time.monotonic() > deadline:
                break  # reported below, with the unfinished jobs' last errors
            time.sleep(0.05)
            with burst_workers() as again:
                wait_exit(again, max(1.0, deadline - time.monotonic()))
            rounds += 1
        calls = _upstream_requests(crm) + _upstream_requests(billing)
        states = measure.job_states(box.reader, JOB_TYPE)
        done = measure.window(box.reader)
        durations = measure.attempt_durations_ms(box.reader)
        unfinished = measure.unfinished_attempts(box.reader, JOB_TYPE)
    if states.get("succeeded", 0) != count:
        raise BenchError(
            f"sync: not every customer job succeeded: {states}; " + "; ".join(unfinished)
        )
    slots = opts.processes * opts.concurrency
    calls_per_job = calls / count
    # The bound: every slot busy, each job spending calls_per_job x latency upstream.
    bound = slots * 1000 / (calls_per_job * latency) if latency > 0 and calls else None
    drain_rate = count / done.drain_seconds if done.drain_seconds > 0 else 0.0
    return [
        Result(
            "sync",
            box.backend,
            count,
            done.seconds_since(started),
            variant=f"{latency} ms, faults {faults:g}",
            processes=opts.processes,
            concurrency=opts.concurrency,
            p50_ms=rounded(percentile(durations, 50)),
            p95_ms=rounded(percentile(durations, 95)),
            p99_ms=rounded(percentile(durations, 99)),
            succeeded=states.get("succeeded", 0),
            extra={
                "latency_ms": latency,
                "fault_rate": faults,
                "attempts": len(durations),
                "upstream_calls_per_job": round(calls_per_job, 2),
                "bound_jobs_per_s": rounded(bound, 1),
                "drain_jobs_per_s": round(drain_rate, 1),
                "of_bound": rounded(drain_rate / bound, 3) if bound else None,
                "worker_rounds": rounds,
            }
            | cpu.report,
        )
    ]


def _upstream_requests(base_url: str) -> int:
    """Requests the mock served (every status), from its ``/_stats``."""
    try:
        stats = httpx.get(f"{base_url}/_stats", timeout=10).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise BenchError(f"cannot read {base_url}/_stats: {exc}") from None
    return sum(int(n) for n in stats.get("requests", {}).values())
