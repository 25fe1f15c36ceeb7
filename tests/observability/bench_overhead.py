"""What metrics and logging cost on ``noop`` throughput (docs/observability.md has the numbers).

    .venv/bin/python -m tests.observability.bench_overhead [--jobs 2000] [--rounds 3]
        [--database-url URL]

One in-process burst worker (concurrency 8) drains N noop jobs per round, in four set-ups:
logging off (level error) or on (JSON lines at info to /dev/null), metrics off or on
(``WorkerMetrics.on_event``). Prints the median jobs/s of each and the cost relative to "bare",
then the cost per job of each part alone (the events one noop job sends, and its log lines),
which is steadier than throughput on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from syncbridge import migrate
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.logs import configure_logging, get_logger
from syncbridge.metrics import Metrics, WorkerMetrics
from syncbridge.models import EnqueueRequest
from syncbridge.worker import Worker
from tests.conftest import truncate
from tests.helpers import fast_settings, registry_with

SETUPS: dict[str, tuple[str, bool]] = {
    "bare": ("error", False),
    "logs": ("info", False),
    "metrics": ("error", True),
    "logs+metrics": ("info", True),
}


def one_round(store: Store, jobs: int, level: str, with_metrics: bool) -> float:
    truncate(store.engine)
    for n in range(jobs):
        store.enqueue(EnqueueRequest("noop", f"bench-{n}", {}, 3))
    with open(os.devnull, "w") as sink:
        configure_logging("json", level, sink)
        on_event: Callable[[str, dict[str, Any]], None] | None = None
        if with_metrics:
            on_event = WorkerMetrics(Metrics()).on_event
        worker = Worker(
            store, registry_with(), fast_settings(), concurrency=8, burst=True, on_event=on_event
        )
        started = time.perf_counter()
        worker.run()
        elapsed = time.perf_counter() - started
    assert worker.stats.outcomes == {"succeeded": jobs}, worker.stats.outcomes
    return jobs / elapsed


def per_job_costs(repeat: int = 20_000) -> dict[str, float]:
    """Microseconds per job: the metrics of one job's events, and its info log line."""
    metrics = WorkerMetrics(Metrics())
    job = {"job_id": 1, "job_type": "noop", "entity_id": "e", "attempt": 1, "correlation_id": "c"}
    started = time.perf_counter()
    for n in range(repeat):
        job["job_id"] = n
        metrics.on_event("attempt_started", job)
        metrics.on_event(
            "attempt_finished",
            job | {"outcome": "succeeded", "duration_ms": 0.4, "error_class": None},
        )
        metrics.on_event("job_state", {"job_id": n, "attempt": 1, "state": "succeeded"})
    metrics_us = (time.perf_counter() - started) / repeat * 1e6
    with open(os.devnull, "w") as sink:
        configure_logging("json", "info", sink)
        log = get_logger(worker_id="w")
        started = time.perf_counter()
        for n in range(repeat):
            log.debug("attempt_started", **job)  # filtered out at info
            log.info("attempt_finished", **job, outcome="succeeded", duration_ms=0.4)
            log.debug("job_state", job_id=n, attempt=1, state="succeeded")
        logs_us = (time.perf_counter() - started) / repeat * 1e6
    return {"metrics": metrics_us, "logs": logs_us}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        engine = make_engine(url)
        migrate.upgrade(engine)
        store = Store(engine)
        results: dict[str, list[float]] = {name: [] for name in SETUPS}
        names = list(SETUPS)
        for r in range(args.rounds):  # interleaved and rotated: drift hits every set-up alike
            for name in names[r % len(names) :] + names[: r % len(names)]:
                level, with_metrics = SETUPS[name]
                results[name].append(one_round(store, args.jobs, level, with_metrics))
        engine.dispose()
    bare = statistics.median(results["bare"])
    print(f"{engine.dialect.name}, {args.jobs} noop jobs, concurrency 8, median of {args.rounds}")
    for name, rates in results.items():
        rate = statistics.median(rates)
        print(f"  {name:<13} {rate:8.0f} jobs/s  {100 * (rate / bare - 1):+6.1f}%")
    for part, micros in per_job_costs().items():
        print(
            f"  {part} alone: {micros:.1f} µs per job ({micros * bare / 1e4:.2f}% of one core at "
            f"{bare:.0f} jobs/s)"
        )


if __name__ == "__main__":
    main()
