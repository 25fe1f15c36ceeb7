"""A real ``syncbridge worker --metrics-port`` process, scraped over HTTP; and ``stats``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from sqlalchemy import Engine

from syncbridge.db.queries import Store
from syncbridge.models import EnqueueRequest
from tests.conftest import truncate
from tests.helpers import free_port
from tests.observability.promtext import assert_bounded_labels, parse, value
from tests.processes import run_cli, wait_for, worker_process

pytestmark = pytest.mark.processes


def scrape(port: int) -> list[Metric] | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except httpx.HTTPError:
        return None  # not listening yet
    response.raise_for_status()
    return parse(response.text)


def test_scraped_worker_metrics_are_exact(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    truncate(engine)
    store = Store(engine)
    flaky = store.enqueue(
        EnqueueRequest("noop", "ent-proc-flaky", {"fail": "retryable", "fail_attempts": 2}, 3)
    ).job
    ok = store.enqueue(EnqueueRequest("noop", "ent-proc-ok", {}, 3)).job
    port = free_port()
    log = tmp_path / "worker.log"
    scraped: list[list[Metric]] = []

    def both_finished() -> bool:
        families = scrape(port)
        if families is None:
            return False
        scraped.append(families)
        done = value(families, "syncbridge_jobs_finished_total", job_type="noop", state="succeeded")
        return done == 2

    with worker_process(
        database_url, "--metrics-port", str(port), "--worker-id", "scraped-worker", log_path=log
    ):
        wait_for(both_finished, 60, "both jobs on the scraped page")
    families = scraped[-1]

    def metric(name: str, **labels: str) -> float | None:
        return value(families, name, **labels)

    assert metric("syncbridge_retries_total", error_class="UpstreamUnavailable") == 2
    assert metric("syncbridge_attempts_total", job_type="noop", outcome="error") == 2
    assert metric("syncbridge_attempts_total", job_type="noop", outcome="succeeded") == 2
    assert (
        metric("syncbridge_attempt_duration_seconds_count", job_type="noop", outcome="error") == 2
    )
    assert metric("syncbridge_queue_depth", state="pending", job_type="noop") == 0
    assert metric("syncbridge_queue_depth", state="dead", job_type="noop") == 0
    assert metric("syncbridge_workers_live") == 1
    assert metric("syncbridge_database_scrape_up") == 1
    assert metric("process_start_time_seconds") is not None
    ids = [flaky.id, ok.id, flaky.entity_id, ok.entity_id, "scraped-worker"]
    assert assert_bounded_labels(families, ids) > 50

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    [serving] = [line for line in lines if line["event"] == "metrics_serving"]
    assert serving["port"] == port

    # the JSON summary, from another process, agrees with what the worker counted
    run = run_cli(database_url, "stats", "--json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert (doc["attempts"], doc["retries"], doc["succeeded"], doc["dlq_size"]) == (4, 2, 2, 0)
    assert doc["success_rate"] == 1.0

    human = run_cli(database_url, "stats")
    assert human.returncode == 0, human.stderr
    assert "success rate" in human.stdout and "100.0%" in human.stdout
