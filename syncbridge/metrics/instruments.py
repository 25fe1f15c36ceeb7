"""Every instrument one process records, on a registry of its own.

Counters and histograms here count what *this process* saw (its attempts, its upstream calls, its
API requests); what is true across processes (queue depth, the DLQ, live workers) is read from the
database at scrape time by :class:`~syncbridge.metrics.database.DatabaseCollector`.

Labels are bounded: job type, outcome, state, error class, upstream, method, status, route,
deduplicated. Never a job id, an entity id or a worker id.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from syncbridge.db.queries import Store
from syncbridge.metrics.database import DEFAULT_STALE_AFTER_SECONDS, DatabaseCollector

# Handler wall time: a noop takes microseconds, a sync seconds, a timeout up to minutes.
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
NO_RESPONSE = "no_response"  # the status label of an upstream call that got no HTTP answer


class Metrics:
    """The instruments of one process. Tests make their own; production uses
    :func:`syncbridge.metrics.process_metrics`."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, process_collectors: bool = False
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.database: DatabaseCollector | None = None
        if process_collectors:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        r = self.registry
        # -- jobs ------------------------------------------------------------------------------
        self.jobs_enqueued = Counter(
            "syncbridge_jobs_enqueued",
            "Enqueue calls by job type; deduplicated=true returned an existing active job.",
            ["job_type", "deduplicated"],
            registry=r,
        )
        self.jobs_finished = Counter(
            "syncbridge_jobs_finished",
            "Jobs this worker moved to a terminal state, by job type and that state.",
            ["job_type", "state"],
            registry=r,
        )
        self.attempts = Counter(
            "syncbridge_attempts",
            "Attempts this worker finished, by job type and outcome.",
            ["job_type", "outcome"],
            registry=r,
        )
        self.attempt_duration = Histogram(
            "syncbridge_attempt_duration_seconds",
            "Wall time of one attempt's handler in the worker.",
            ["job_type", "outcome"],
            buckets=ATTEMPT_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "syncbridge_retries",
            "Attempts that ended retryably and sent their job back to pending, by error class.",
            ["error_class"],
            registry=r,
        )
        self.lease_expirations = Counter(
            "syncbridge_lease_expirations",
            "Running jobs whose lease had expired, rescued by this worker.",
            registry=r,
        )
        self.jobs_recovered = Counter(
            "syncbridge_jobs_recovered",
            "Rescued jobs by where they went: pending (another attempt) or dead.",
            ["state"],
            registry=r,
        )
        self.leases_lost = Counter(
            "syncbridge_leases_lost",
            "Completions refused by the fence: the lease had moved on; nothing was written.",
            ["job_type"],
            registry=r,
        )
        self.jobs_released = Counter(
            "syncbridge_jobs_released",
            "Jobs given back at shutdown without charging an attempt.",
            registry=r,
        )
        # -- the worker itself -----------------------------------------------------------------
        self.concurrency = Gauge(
            "syncbridge_worker_concurrency", "Handler threads of this worker.", registry=r
        )
        self.in_flight = Gauge(
            "syncbridge_jobs_in_flight", "Attempts running in this worker now.", registry=r
        )
        self.database_up = Gauge(
            "syncbridge_database_up",
            "1 while this worker's last database call succeeded, 0 during an outage.",
            registry=r,
        )
        self.database_outages = Counter(
            "syncbridge_database_outages",
            "Times this worker lost the database (counted once per outage, not per poll).",
            registry=r,
        )
        self.database_outage_seconds = Counter(
            "syncbridge_database_outage_seconds",
            "Seconds of database outages this worker recovered from.",
            registry=r,
        )
        # -- upstreams and the API -------------------------------------------------------------
        self.upstream_requests = Counter(
            "syncbridge_upstream_requests",
            f"Upstream HTTP requests by upstream, method and status ({NO_RESPONSE}: none came).",
            ["upstream", "method", "status"],
            registry=r,
        )
        self.upstream_duration = Histogram(
            "syncbridge_upstream_request_duration_seconds",
            "Upstream HTTP request latency.",
            ["upstream", "method"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.api_requests = Counter(
            "syncbridge_api_requests",
            "HTTP API requests by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.api_duration = Histogram(
            "syncbridge_api_request_duration_seconds",
            "HTTP API request latency by method and route template.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )

    # -- the hooks other modules call ----------------------------------------------------------

    def observe_enqueue(self, job_type: str, deduplicated: bool) -> None:
        self.jobs_enqueued.labels(job_type, "true" if deduplicated else "false").inc()

    def observe_upstream(
        self, upstream: str, method: str, status: int | None, seconds: float
    ) -> None:
        """Usable as the upstream client's ``on_response`` hook; ``status`` None: no answer."""
        method = method.upper()
        label = NO_RESPONSE if status is None else str(status)
        self.upstream_requests.labels(upstream, method, label).inc()
        self.upstream_duration.labels(upstream, method).observe(seconds)

    def observe_api_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """``route`` must be the route *template* (``/api/jobs/{job_id}``), never the raw path."""
        method = method.upper()
        self.api_requests.labels(method, route, str(status)).inc()
        self.api_duration.labels(method, route).observe(seconds)

    # -- the database's gauges and the exposition ----------------------------------------------

    def bind_store(
        self,
        store: Store,
        job_types: Sequence[str] = (),
        stale_after_seconds: float = DEFAULT_STALE_AFTER_SECONDS,
    ) -> DatabaseCollector:
        """Export the scrape-time gauges of ``store`` from this registry (once per store)."""
        current = self.database
        if current is not None:
            if current.store is store:
                return current
            self.registry.unregister(current)
        self.database = DatabaseCollector(store, job_types, stale_after_seconds)
        self.registry.register(self.database)
        return self.database

    def render(self) -> bytes:
        """The Prometheus text format (0.0.4) of everything on this registry."""
        return generate_latest(self.registry)
