"""The engine's own scenarios: ``noop`` throughput, ``latency``, ``enqueue`` and ``backlog``."""

from __future__ import annotations

import gc
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import partial

from syncbridge.bench import measure
from syncbridge.bench.options import BULK_RUNS, SMALL_BACKLOG, Options
from syncbridge.bench.procs import RssSampler, wait_exit, wait_until, workers
from syncbridge.bench.result import (
    BenchError,
    Result,
    fastest,
    median_run,
    percentile,
    rounded,
    taking_turns,
)
from syncbridge.bench.sandbox import sandbox
from syncbridge.clock import SystemClock
from syncbridge.db.queries import Store

CLOCK = SystemClock()
ENQUEUE_CLIENTS = 4
# Larger noop runs (the 1M-job memory run) are set up in SQL rather than through enqueue_many.
BULK_SETUP_LIMIT = 100_000


def noop(opts: Options) -> list[Result]:
    """Bulk-enqueue N no-op jobs, then drain them with P burst workers; time from worker start
    to the last success, as the database recorded it. With ``repeat`` (not with ``rss``), the
    fastest of that many runs, each in a fresh database, every run's rate recorded."""
    if opts.rss:
        return [noop_once(opts, concurrency) for concurrency in opts.rss_concurrencies]
    return [fastest([noop_once(opts, opts.concurrency) for _ in range(opts.repeat)])]


def noop_once(opts: Options, concurrency: int) -> Result:
    count = opts.jobs_for("noop")
    with sandbox(opts.database_url, "noop") as box:
        opts.progress(f"noop: enqueueing {count} jobs ({box.backend})")
        if count > BULK_SETUP_LIMIT:  # not timed: a million rows in seconds, straight in SQL
            measure.fill_backlog(box.engine, count, "n")
        else:
            measure.enqueue_bulk(box.store, measure.noop_requests(count, "n"))
        measure.analyze(box.engine)
        opts.progress(f"noop: draining with {opts.processes} x {concurrency} workers")
        started = CLOCK.now()
        with workers(
            box.url, opts.processes, concurrency, opts.work_dir, args=opts.worker_args
        ) as procs:
            sampler = RssSampler(procs) if opts.rss else nullcontext()
            with sampler:
                wait_exit(procs, opts.timeout)
        done = measure.window(box.reader)
        _require_all(done.succeeded, count, "noop")
        result = Result(
            "noop",
            box.backend,
            count,
            done.seconds_since(started),
            variant="metrics on" if opts.worker_metrics else "",
            processes=opts.processes,
            concurrency=concurrency,
            succeeded=done.succeeded,
            extra=_drain(count, done),
        )
        if opts.rss:  # the process that grew most
            samples = max((p.rss_kb for p in procs), key=lambda kb: max(kb, default=0))
            result.extra |= measure.rss_summary(samples)
        return result


def latency(opts: Options) -> list[Result]:
    """One running worker; jobs enqueued one by one at a steady rate; enqueue-to-start latency
    is ``attempts.started_at - jobs.created_at`` of each job's first attempt."""
    count = opts.jobs_for("latency")
    with sandbox(opts.database_url, "latency") as box:
        store = box.store
        with workers(
            box.url, 1, opts.concurrency, opts.work_dir, burst=False, args=opts.worker_args
        ) as procs:
            wait_until(lambda: bool(store.live_workers()), 60, "the worker to register")
            warm_up = 10
            _paced(store, "warm", warm_up, opts.rate)
            opts.progress(f"latency: {count} jobs at {opts.rate:g}/s ({box.backend})")
            # This process stamps each job's creation time before its insert commits (SQLite:
            # the injected clock), so a full pass of its own garbage collector in between
            # (15-60 ms here) would count as the engine's latency: settle the heap first.
            gc.collect()
            gc.freeze()
            try:
                seconds = _paced(store, "l", count, opts.rate)
            finally:
                gc.unfreeze()
            wait_until(
                lambda: (
                    measure.succeeded_count(box.reader) >= count + warm_up
                    or procs[0].process.poll() is not None
                ),
                opts.timeout,
                "the latency jobs to finish",
            )
            if procs[0].process.poll() is not None:
                raise BenchError(f"latency: the worker exited; log tail:\n{procs[0].log_tail()}")
        _require_all(measure.succeeded_count(box.reader) - warm_up, count, "latency")
        latencies = measure.start_latencies_ms(box.reader, "l")
    return [
        Result(
            "latency",
            box.backend,
            count,
            seconds,
            variant=f"{opts.rate:g}/s",
            processes=1,
            concurrency=opts.concurrency,
            p50_ms=rounded(percentile(latencies, 50)),
            p95_ms=rounded(percentile(latencies, 95)),
            p99_ms=rounded(percentile(latencies, 99)),
            succeeded=count,
            extra={"max_ms": rounded(max(latencies, default=0.0))},
        )
    ]


def _paced(store: Store, prefix: str, count: int, rate: float) -> float:
    """Enqueue ``count`` jobs one by one on a fixed schedule of ``rate`` per second (open loop:
    a few client threads, so one slow enqueue does not delay the next arrival); returns the
    seconds taken."""
    begin = time.perf_counter()
    with ThreadPoolExecutor(ENQUEUE_CLIENTS, thread_name_prefix="bench-enqueue") as clients:
        futures = []
        for n, request in enumerate(measure.noop_requests(count, prefix)):
            delay = begin + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(clients.submit(store.enqueue, request))
        for future in futures:
            future.result()
    return time.perf_counter() - begin


def enqueue(opts: Options) -> list[Result]:
    """Enqueue rate: bulk through ``enqueue_many`` (deduplication kept: ``ON CONFLICT``), and
    one by one through ``Store.enqueue``: from one caller, then from a few at once (an
    application enqueues from its request threads; their commits can share a WAL flush)."""
    count = opts.jobs_for("enqueue")
    with sandbox(opts.database_url, "enqueue") as box:
        opts.progress(f"enqueue: {count} jobs in bulk, then one by one ({box.backend})")
        measure.enqueue_bulk(box.store, measure.noop_requests(10, "warm-up"))
        bulk_runs = []
        for run in range(BULK_RUNS):
            requests = list(measure.noop_requests(count, f"b{run}-"))
            begin = time.perf_counter()
            if measure.enqueue_bulk(box.store, iter(requests)) != count:
                raise BenchError(f"bulk enqueue run {run + 1} did not store {count} jobs")
            bulk_runs.append(time.perf_counter() - begin)
        bulk_seconds = statistics.median(bulk_runs)
        singles = list(measure.noop_requests(count, "s"))
        begin = time.perf_counter()
        for request in singles:
            box.store.enqueue(request)
        single_seconds = time.perf_counter() - begin
        callers = measure.ENQUEUE_CALLERS
        shared = list(measure.noop_requests(count, "c"))
        begin = time.perf_counter()
        measure.enqueue_from_threads(box.store, shared, callers)
        shared_seconds = time.perf_counter() - begin
        results = [
            Result(
                "enqueue",
                box.backend,
                count,
                bulk_seconds,
                variant="bulk",
                succeeded=count,
                extra={"runs_jobs_per_s": [round(count / seconds, 1) for seconds in bulk_runs]},
            ),
            Result(
                "enqueue", box.backend, count, single_seconds, variant="one-by-one", succeeded=count
            ),
            Result(
                "enqueue",
                box.backend,
                count,
                shared_seconds,
                variant=f"one-by-one, {callers} callers",
                succeeded=count,
            ),
        ]
        if box.backend == "postgresql":
            floor_seconds = measure.driver_floor(box.store, measure.noop_requests(count, "f"))
            results.append(
                Result(
                    "enqueue",
                    box.backend,
                    count,
                    floor_seconds,
                    variant="one-by-one, driver floor",
                    succeeded=count,
                )
            )
        pending = measure.job_states(box.reader, "noop").get("pending", 0)
    expected = count * (len(results) - 1 + BULK_RUNS) + 10  # and the warm-up's
    if pending != expected:
        raise BenchError(f"enqueue: expected {expected} pending jobs, found {pending}")
    return results


def backlog(opts: Options) -> list[Result]:
    """Drain K jobs from a queue that also holds a small (1,000) and then a large (``--backlog``)
    number of other pending jobs; compare the rates over the first K successes. The backlog is
    written straight in SQL (see ``measure.fill_backlog``), the K jobs through ``enqueue_many``.

    With ``repeat``, the two sizes take turns that many times (small, large, small, ...) and each
    size's median run is reported: a slow spell of the host (another database's checkpoint, the
    kernel writing back the large fill) then falls on both sides of the ratio alike."""
    sizes = dict.fromkeys((SMALL_BACKLOG, opts.backlog))
    runs = taking_turns(opts.repeat, {size: partial(_backlog_once, opts, size) for size in sizes})
    return [median_run(size_runs) for size_runs in runs.values()]


def _backlog_once(opts: Options, size: int) -> Result:
    count = opts.jobs_for("backlog")
    with sandbox(opts.database_url, "backlog") as box:
        opts.progress(f"backlog: {count} + {size} pending jobs ({box.backend})")
        begin = time.perf_counter()
        measure.fill_backlog(box.engine, size, "q")
        measure.enqueue_bulk(box.store, measure.noop_requests(count, "k"))
        fill_seconds = time.perf_counter() - begin
        measure.analyze(box.engine)
        opts.progress(f"backlog: draining {count} with {opts.processes} x {opts.concurrency}")
        started = CLOCK.now()
        with workers(
            box.url, opts.processes, opts.concurrency, opts.work_dir, args=opts.worker_args
        ) as procs:
            wait_until(
                lambda: (
                    measure.succeeded_count(box.reader) >= count
                    or all(p.process.poll() is not None for p in procs)
                ),
                opts.timeout,
                f"{count} backlog jobs to finish",
                poll=0.05,
            )
        done = measure.window(box.reader, first=count)
        _require_all(done.succeeded, count, "backlog")
        return Result(
            "backlog",
            box.backend,
            count,
            done.seconds_since(started),
            variant=f"{size} pending",
            processes=opts.processes,
            concurrency=opts.concurrency,
            succeeded=done.succeeded,
            extra={"pending": count + size, "fill_seconds": round(fill_seconds, 3)}
            | _drain(count, done),
        )


def _drain(count: int, done: measure.Window) -> dict[str, float]:
    """Rate from the first attempt's start to the last success (worker start-up left out), and
    the steady rate (``measure.steady_ranks``)."""
    seconds = done.drain_seconds
    return {
        "drain_seconds": round(seconds, 4),
        "drain_jobs_per_s": round(count / seconds, 1) if seconds > 0 else 0.0,
        "steady_jobs_per_s": round(measure.steady_rate(count, done.steady_seconds), 1),
    }


def _require_all(succeeded: int, expected: int, scenario: str) -> None:
    if succeeded < expected:
        raise BenchError(f"{scenario}: only {succeeded} of {expected} jobs succeeded")
