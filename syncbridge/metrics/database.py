"""Gauges read from the database when Prometheus scrapes: right whichever process serves them.

Every process that serves metrics (each worker, the API) exports the same values here; dashboards
and alerts aggregate them with ``max`` so N targets do not count N times. A scrape costs two
small statements and a read of the reconcile table, which holds a row only per job whose effect
is still unsettled (:mod:`syncbridge.metrics.queries`); if the database does not answer, the
scrape still succeeds with ``syncbridge_database_scrape_up 0`` and the process's own counters.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import datetime

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy.exc import SQLAlchemyError

from syncbridge.db.engine import driver_message
from syncbridge.db.queries import Store
from syncbridge.logs import get_logger
from syncbridge.metrics.queries import (
    QUEUE_STATES,
    queue_snapshot,
    unanswered_effects,
    worker_snapshot,
)

DEFAULT_STALE_AFTER_SECONDS = 180.0  # three default leases: a live worker beats every lease / 3


def _age(now: datetime, since: datetime | None) -> float:
    """Seconds from ``since`` to ``now``; 0 where there is nothing (or a clock ran back)."""
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())


class DatabaseCollector:
    def __init__(
        self,
        store: Store,
        job_types: Sequence[str] = (),
        stale_after_seconds: float = DEFAULT_STALE_AFTER_SECONDS,
    ) -> None:
        self.store = store
        self.job_types = tuple(job_types)
        self.stale_after_seconds = stale_after_seconds
        self.log = get_logger()

    def describe(self) -> Iterator[Metric]:
        """The families without values, so registering costs no query."""
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        families = self._families()
        depth, runnable, oldest, live, stale, heartbeat, unanswered, unanswered_age, up, seconds = (
            families
        )
        try:
            workers = worker_snapshot(self.store, self.stale_after_seconds)
            groups = queue_snapshot(self.store)
            unsettled = {u.job_type: u for u in unanswered_effects(self.store)}
        except SQLAlchemyError as exc:
            self.log.warning(
                "metrics_database_unavailable",
                error_class=type(exc).__name__,
                error=driver_message(exc)[:300],
            )
            up.add_metric([], 0)
            yield up
            return
        job_types = sorted({*self.job_types, *(group.job_type for group in groups), *unsettled})
        counts = {(g.state, g.job_type): g.jobs for g in groups}
        for state in QUEUE_STATES:
            for job_type in job_types:
                depth.add_metric([state, job_type], counts.get((state, job_type), 0))
        pending = {g.job_type: g for g in groups if g.state == "pending"}
        for job_type in job_types:
            group = pending.get(job_type)
            runnable.add_metric([job_type], group.runnable if group else 0)
            due_since = group.oldest_runnable if group else None
            oldest.add_metric([job_type], _age(workers.now, due_since))
            settling = unsettled.get(job_type)
            unanswered.add_metric([job_type], settling.jobs if settling else 0)
            ended = settling.oldest_finished_at if settling else None
            unanswered_age.add_metric([job_type], _age(workers.now, ended))
        live.add_metric([], workers.live)
        stale.add_metric([], workers.stale)
        if workers.last_heartbeat is not None:
            heartbeat.add_metric([], (workers.now - workers.last_heartbeat).total_seconds())
        up.add_metric([], 1)
        seconds.add_metric([], time.perf_counter() - started)
        yield from families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "syncbridge_queue_depth",
                "Jobs by queue state (pending, running, failed, dead: the DLQ) and job type.",
                labels=["state", "job_type"],
            ),
            GaugeMetricFamily(
                "syncbridge_jobs_runnable",
                "Pending jobs due now (not waiting for a retry backoff or a run-at).",
                labels=["job_type"],
            ),
            GaugeMetricFamily(
                "syncbridge_oldest_runnable_job_age_seconds",
                "How long the oldest due pending job has been due; 0 when none is.",
                labels=["job_type"],
            ),
            GaugeMetricFamily(
                "syncbridge_workers_live",
                "Workers not stopped whose heartbeat is recent.",
            ),
            GaugeMetricFamily(
                "syncbridge_workers_stale",
                "Workers not stopped whose heartbeat is old (killed without stopping).",
            ),
            GaugeMetricFamily(
                "syncbridge_worker_last_heartbeat_age_seconds",
                "Age of the newest heartbeat of any worker not stopped (absent if none).",
            ),
            GaugeMetricFamily(
                "syncbridge_effects_unanswered",
                "Jobs whose effect is unknown (an attempt of unknown outcome) and that reconcile"
                " asked the upstream about without an answer yet.",
                labels=["job_type"],
            ),
            GaugeMetricFamily(
                "syncbridge_oldest_unanswered_effect_age_seconds",
                "How long ago the longest-unanswered such job ended; 0 when none is.",
                labels=["job_type"],
            ),
            GaugeMetricFamily(
                "syncbridge_database_scrape_up",
                "1 if the scrape-time database queries answered.",
            ),
            GaugeMetricFamily(
                "syncbridge_database_scrape_duration_seconds",
                "Time the scrape-time database queries took.",
            ),
        )
