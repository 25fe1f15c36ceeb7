"""Prometheus metrics and the JSON summary.

Who calls what:

- the worker: ``Worker(on_event=WorkerMetrics().on_event)`` and
  :func:`serve_worker_metrics` for ``--metrics-port``;
- the API: :func:`render_prometheus` for ``GET /metrics``, :func:`summary` for
  ``GET /api/metrics``, :func:`observe_api_request` from its middleware;
- services: :func:`observe_enqueue`; the upstream client: :func:`observe_upstream` as its
  ``on_response`` hook.

**A port per process, not multiprocess mode.** Each worker serves its own registry on its own
``--metrics-port`` and is its own Prometheus target. prometheus-client's multiprocess mode exists
for pre-fork servers that answer one port from many children: it needs
``PROMETHEUS_MULTIPROC_DIR`` set before the first import, a shared directory wiped at every
start, per-pid files merged at each scrape, and it does not support custom collectors like the
database one here. Our workers are independent processes, often on different hosts (or
containers), that start and stop on their own: a target each is simpler and loses nothing, since
``rate()`` handles a counter that restarts at zero. Several workers on one host take different
ports (``--metrics-port 0`` picks a free one and logs it). Gauges read from the database are the
same on every target; aggregate them with ``max``.

The process's instruments live on a private registry made on first use (never at import), so
tests can make their own :class:`Metrics` and never meet the global ``REGISTRY``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import disable_created_metrics, start_http_server

from syncbridge.db.queries import Store
from syncbridge.logs import get_logger
from syncbridge.metrics.database import DEFAULT_STALE_AFTER_SECONDS, DatabaseCollector
from syncbridge.metrics.events import WorkerMetrics
from syncbridge.metrics.instruments import Metrics
from syncbridge.metrics.summary import summary

__all__ = [
    "CONTENT_TYPE",
    "DatabaseCollector",
    "Metrics",
    "MetricsServer",
    "WorkerMetrics",
    "instrument_worker",
    "observe_api_request",
    "observe_enqueue",
    "observe_upstream",
    "process_metrics",
    "render_prometheus",
    "serve_worker_metrics",
    "summary",
]

# What generate_latest writes: Prometheus text format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_process: Metrics | None = None
_process_lock = threading.Lock()


def process_metrics() -> Metrics:
    """This process's instruments, with the process/platform/GC collectors; made on first use."""
    global _process
    with _process_lock:
        if _process is None:
            # ``*_created`` series double the page and no dashboard reads them.
            disable_created_metrics()  # type: ignore[no-untyped-call]
            _process = Metrics(process_collectors=True)
        return _process


def observe_enqueue(job_type: str, deduplicated: bool) -> None:
    process_metrics().observe_enqueue(job_type, deduplicated)


def observe_upstream(upstream: str, method: str, status: int | None, seconds: float) -> None:
    """The upstream client's ``on_response(upstream, method, status | None, seconds)`` hook."""
    process_metrics().observe_upstream(upstream, method, status, seconds)


def observe_api_request(method: str, route: str, status: int, seconds: float) -> None:
    """Call once per API request with the route *template* (``/api/jobs/{job_id}``)."""
    process_metrics().observe_api_request(method, route, status, seconds)


def render_prometheus(store: Store) -> tuple[bytes, str]:
    """``GET /metrics``: this process's instruments plus the database gauges of ``store``."""
    metrics = process_metrics()
    metrics.bind_store(store)
    return metrics.render(), CONTENT_TYPE


@dataclass(frozen=True)
class MetricsServer:
    port: int
    addr: str
    close: Callable[[], None]


def serve_worker_metrics(
    port: int,
    store: Store,
    *,
    addr: str = "0.0.0.0",
    metrics: Metrics | None = None,
    job_types: Sequence[str] = (),
    stale_after_seconds: float = DEFAULT_STALE_AFTER_SECONDS,
) -> MetricsServer:
    """Serve ``metrics`` (default: this process's) on ``addr:port`` from a daemon thread.

    ``port`` 0 takes a free port; either way the port is logged (``metrics_serving``). All
    interfaces by default, like any exporter, so Prometheus in another container can scrape it:
    the page holds counts and durations, never ids or payloads.
    """
    metrics = metrics or process_metrics()
    metrics.bind_store(store, job_types, stale_after_seconds)
    server, thread = start_http_server(port, addr=addr, registry=metrics.registry)
    bound = int(server.server_port)

    def close() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    get_logger().info("metrics_serving", port=bound, addr=addr, path="/metrics")
    return MetricsServer(bound, addr, close)


WorkerHooks = tuple[
    Callable[[str, dict[str, Any]], None], Callable[[str, str, int | None, float], None]
]


def instrument_worker(
    port: int, store: Store, job_types: Sequence[str], stale_after_seconds: float
) -> WorkerHooks:
    """Serve this process's metrics on ``port`` and return the worker's hooks:
    ``(on_event for Worker, on_response for build_upstreams)``."""
    serve_worker_metrics(port, store, job_types=job_types, stale_after_seconds=stale_after_seconds)
    return WorkerMetrics().on_event, observe_upstream
