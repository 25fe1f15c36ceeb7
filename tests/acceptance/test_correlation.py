"""One correlation id, followed from enqueue through the worker's log lines to the CRM and
Billing requests (the mocks log every request with the id they received)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mocks.testing import start_mock_servers
from tests.processes import run_cli

pytestmark = pytest.mark.processes


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_correlation_id_travels_end_to_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'corr.db'}"
    assert run_cli(url, "migrate").returncode == 0
    with start_mock_servers() as mocks:
        env = {"SYNCBRIDGE_CRM_URL": mocks.crm_url, "SYNCBRIDGE_BILLING_URL": mocks.billing_url}
        enqueued = run_cli(
            url, "enqueue", "invoice", "i_2042", "--correlation-id", "trace-42", "--json", **env
        )
        assert enqueued.returncode == 0 and json.loads(enqueued.stdout)["correlation_id"] == (
            "trace-42"
        )
        worker = run_cli(url, "worker", "--burst", **env)
        assert worker.returncode == 0, worker.stderr[-2000:]
        mock_log = _json_lines(mocks.output())
    canonical = [
        line for line in _json_lines(worker.stderr) if line.get("event") == "attempt_finished"
    ]
    assert len(canonical) == 1
    assert canonical[0]["correlation_id"] == "trace-42"
    assert canonical[0]["outcome"] == "succeeded"
    for key in ("job_id", "job_type", "entity_id", "attempt", "worker_id", "duration_ms"):
        assert key in canonical[0]
    seen = {
        (line.get("server"), line.get("method"), line.get("path"))
        for line in mock_log
        if line.get("correlation_id") == "trace-42"
    }
    assert ("crm", "GET", "/invoices/i_2042") in seen
    assert ("crm", "GET", "/customers/c_1042") in seen
    assert ("billing", "PUT", "/customers/c_1042") in seen
    assert ("billing", "POST", "/invoices") in seen
