"""The mocks as a real subprocess over real HTTP, started and stopped by mocks.testing."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
import pytest
from mock_helpers import invoice_body

from mocks.testing import start_mock_servers

pytestmark = pytest.mark.processes


async def post_concurrently(url: str, count: int) -> Counter[int]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        responses = await asyncio.gather(
            *(
                client.post("/invoices", json=invoice_body(), headers={"Idempotency-Key": "k1"})
                for _ in range(count)
            )
        )
    return Counter(r.status_code for r in responses)


def test_subprocess_serves_both_mocks_and_stops_cleanly() -> None:
    with start_mock_servers(seed=7, slow_seconds=0.5) as mocks:
        crm = httpx.get(f"{mocks.crm_url}/customers/c_1001", headers={"X-Correlation-ID": "proc-1"})
        assert crm.status_code == 200 and crm.headers["X-Correlation-ID"] == "proc-1"
        assert mocks.faults("crm")["seed"] == 7

        assert mocks.set_faults("billing", latency_ms=5)["latency_ms"] == 5
        customer = {"name": "Ada", "email": "ada@example.com"}
        assert httpx.put(f"{mocks.billing_url}/customers/c_1001", json=customer).status_code == 201
        statuses = asyncio.run(post_concurrently(mocks.billing_url, 50))
        assert statuses[201] >= 1 and set(statuses) <= {201, 409}
        assert mocks.stats("billing")["effects"] == {"(no key)": 1, "k1": 1}

        lines = [json.loads(line) for line in mocks.output().splitlines() if line.startswith("{")]
        assert any(line.get("correlation_id") == "proc-1" for line in lines)
        assert "crm listening on http://127.0.0.1:" in mocks.output()
    assert mocks.process.returncode == 0


def test_subprocess_is_stopped_even_when_the_test_body_fails() -> None:
    with pytest.raises(RuntimeError, match="boom"), start_mock_servers() as mocks:
        raise RuntimeError("boom")
    assert mocks.process.returncode == 0


def test_unknown_options_are_refused_before_starting() -> None:
    with pytest.raises(TypeError, match="fault_rat"), start_mock_servers(fault_rat=0.5):
        pass  # pragma: no cover
