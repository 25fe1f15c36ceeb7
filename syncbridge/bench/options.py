"""The knobs of one ``syncbridge bench`` run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = ("noop", "latency", "enqueue", "backlog", "sync")

# Jobs per scenario when --jobs is not given.
DEFAULT_JOBS = {"noop": 20_000, "latency": 1_000, "enqueue": 20_000, "backlog": 20_000, "sync": 500}
RSS_CONCURRENCIES = (1, 50, 200)
# Bulk enqueue is timed this many times (after a warm-up) and the median reported, on our side
# and PgQueuer's alike: one cold 20,000-job run moved ±25% between runs.
BULK_RUNS = 3
SMALL_BACKLOG = 1_000


@dataclass(frozen=True)
class Options:
    database_url: str
    work_dir: Path  # worker and mock logs
    jobs: int | None = None
    processes: int = 1
    concurrency: int = 100
    backlog: int = 1_000_000
    rate: float = 200.0
    rss: bool = False
    rss_concurrencies: tuple[int, ...] = RSS_CONCURRENCIES
    sync_latency_ms: int = 20
    sync_fault_rate: float = 0.0
    worker_metrics: bool = False  # workers serve Prometheus metrics (--metrics-port 0)
    timeout: float = 1800.0
    repeat: int = 1  # noop: each system's fastest of this many; backlog: each size's median
    progress: Callable[[str], None] = print

    @property
    def worker_args(self) -> tuple[str, ...]:
        return ("--metrics-port", "0") if self.worker_metrics else ()

    def jobs_for(self, scenario: str) -> int:
        return self.jobs if self.jobs is not None else DEFAULT_JOBS[scenario]
