"""The hooks other modules call, and the worker's metrics HTTP server."""

from __future__ import annotations

import httpx
import pytest
import structlog

from syncbridge.db.queries import Store
from syncbridge.errors import UpstreamTimeout, UpstreamUnavailable
from syncbridge.metrics import Metrics, WorkerMetrics, serve_worker_metrics
from syncbridge.upstream import build_upstreams, close_upstreams
from tests.helpers import fast_settings
from tests.observability.promtext import assert_bounded_labels, parse, value


def test_upstream_hook_counts_status_and_latency() -> None:
    metrics = Metrics()
    metrics.observe_upstream("billing", "post", 201, 0.02)
    metrics.observe_upstream("billing", "POST", 503, 0.01)
    metrics.observe_upstream("billing", "POST", None, 10.0)  # timed out: no answer
    families = list(metrics.registry.collect())
    assert (
        value(
            families,
            "syncbridge_upstream_requests_total",
            upstream="billing",
            method="POST",
            status="201",
        )
        == 1
    )
    assert (
        value(
            families,
            "syncbridge_upstream_requests_total",
            upstream="billing",
            method="POST",
            status="503",
        )
        == 1
    )
    assert (
        value(
            families,
            "syncbridge_upstream_requests_total",
            upstream="billing",
            method="POST",
            status="no_response",
        )
        == 1
    )
    assert (
        value(
            families,
            "syncbridge_upstream_request_duration_seconds_count",
            upstream="billing",
            method="POST",
        )
        == 3
    )
    assert value(
        families,
        "syncbridge_upstream_request_duration_seconds_sum",
        upstream="billing",
        method="POST",
    ) == pytest.approx(10.03)


def test_api_and_enqueue_hooks() -> None:
    metrics = Metrics()
    metrics.observe_api_request("get", "/api/jobs/{job_id}", 200, 0.004)
    metrics.observe_api_request("POST", "/api/jobs/{job_type}", 201, 0.01)
    metrics.observe_enqueue("noop", deduplicated=False)
    metrics.observe_enqueue("noop", deduplicated=True)
    families = list(metrics.registry.collect())
    assert (
        value(
            families,
            "syncbridge_api_requests_total",
            method="GET",
            route="/api/jobs/{job_id}",
            status="200",
        )
        == 1
    )
    assert (
        value(
            families,
            "syncbridge_api_request_duration_seconds_bucket",
            method="POST",
            route="/api/jobs/{job_type}",
            le="0.01",
        )
        == 1
    )
    assert (
        value(families, "syncbridge_jobs_enqueued_total", job_type="noop", deduplicated="true") == 1
    )
    assert_bounded_labels(families, [])


def test_unknown_events_are_ignored() -> None:
    metrics = WorkerMetrics(Metrics())
    metrics.on_event("worker_stopping", {"in_flight": 0})
    metrics.on_event("something_new", {"job_id": 1})


def test_port_zero_picks_a_free_port_and_logs_it(store: Store) -> None:
    metrics = Metrics()
    metrics.observe_enqueue("noop", deduplicated=False)
    with structlog.testing.capture_logs() as logs:
        server = serve_worker_metrics(0, store, addr="127.0.0.1", metrics=metrics)
    try:
        assert server.port > 0
        [line] = [line for line in logs if line["event"] == "metrics_serving"]
        assert line["port"] == server.port
        response = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
        assert response.status_code == 200
        families = parse(response.text)
        assert (
            value(families, "syncbridge_jobs_enqueued_total", job_type="noop", deduplicated="false")
            == 1
        )
        assert value(families, "syncbridge_database_scrape_up") == 1
    finally:
        server.close()


def test_the_upstream_client_reports_through_the_hook() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(503 if request.url.path == "/busy" else 200, json={})

    metrics = Metrics()
    upstreams = build_upstreams(
        fast_settings(),
        transports={"crm": httpx.MockTransport(answer)},
        on_response=metrics.observe_upstream,
    )
    try:
        crm = upstreams["crm"].bind(correlation_id="c-1")
        crm.get_json("/customers/c_1001")
        for path, error in (("/busy", UpstreamUnavailable), ("/down", UpstreamTimeout)):
            with pytest.raises(error):
                crm.get_json(path)
    finally:
        close_upstreams(upstreams)
    families = list(metrics.registry.collect())
    for status in ("200", "503", "no_response"):
        assert (
            value(
                families,
                "syncbridge_upstream_requests_total",
                upstream="crm",
                method="GET",
                status=status,
            )
            == 1
        ), status
    assert_bounded_labels(families, ["c_1001", "c-1"])
