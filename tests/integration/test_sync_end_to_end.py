"""The real plugins against the real mock servers, with two real worker processes, at a 10%
fault rate and the default retry budget: every job succeeds, Billing holds one invoice per CRM
invoice and applied each key once, and upstream calls stay bounded."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from mocks.testing import start_mock_servers
from syncbridge.db.queries import Store
from syncbridge.invariants import run_checks
from syncbridge.models import EnqueueRequest
from tests.conftest import truncate
from tests.processes import stop, wait_for, worker_process

pytestmark = pytest.mark.processes

CUSTOMERS = [f"c_{n}" for n in range(1001, 1251)]
INVOICES = [f"i_{n}" for n in range(2001, 2251)]
MAX_RETRIES = 3  # the default budget
CALLS_PER_ATTEMPT = {"customer": {"crm": 1, "billing": 1}, "invoice": {"crm": 2, "billing": 2}}


def test_five_hundred_jobs_at_ten_percent_faults(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    truncate(engine)
    store = Store(engine)
    requests = [EnqueueRequest("customer", c, {}, MAX_RETRIES) for c in CUSTOMERS]
    requests += [EnqueueRequest("invoice", i, {}, MAX_RETRIES) for i in INVOICES]
    store.enqueue_many(requests)
    with start_mock_servers(fault_rate=0.1, seed=11, retry_after_seconds=0.2) as mocks:
        env = {
            "SYNCBRIDGE_CRM_URL": mocks.crm_url,
            "SYNCBRIDGE_BILLING_URL": mocks.billing_url,
            "SYNCBRIDGE_JOB_BACKOFF_SECONDS_BASE": "0.05",
            "SYNCBRIDGE_JOB_LEASE_SECONDS": "10",
        }
        # Not --burst: a burst worker rightly exits while the last retries wait for their
        # backoff; these run until every job has settled.
        with (
            worker_process(
                database_url, "--concurrency", "8", log_path=tmp_path / "a.log", **env
            ) as a,
            worker_process(
                database_url, "--concurrency", "8", log_path=tmp_path / "b.log", **env
            ) as b,
        ):

            def settled() -> bool:
                counts = store.counts_by_state()
                return counts["pending"] == 0 and counts["running"] == 0

            wait_for(settled, 240, "every job to settle")
            stop(a)
            stop(b)
            assert a.returncode == 0, (tmp_path / "a.log").read_text()[-3000:]
            assert b.returncode == 0, (tmp_path / "b.log").read_text()[-3000:]
        crm_stats, billing_stats = mocks.stats("crm"), mocks.stats("billing")
        mocks.set_faults("billing", fault_rate=0.0)  # read Billing's books without injected 503s
        invoices = {
            i: httpx.get(f"{mocks.billing_url}/invoices", params={"external_id": i}).json()
            for i in INVOICES[:25]
        }
    counts = store.counts_by_state()
    assert counts["succeeded"] == len(requests), counts
    injected = billing_stats["requests"].get("503", 0) + crm_stats["requests"].get("503", 0)
    assert injected > 50, "the fault rate must really have bitten"
    # Billing applied every key once, and one invoice per CRM invoice.
    assert billing_stats["effects"] and set(billing_stats["effects"].values()) == {1}
    assert all(len(found["items"]) == 1 for found in invoices.values())
    # Both ways: every ledger row is an effect Billing applied, and every effect Billing applied
    # is in the ledger (an invoice job's customer upsert included: FM_033), once.
    ledger = store.ledger_rows()
    assert len(ledger) == len(CUSTOMERS) + 2 * len(INVOICES)
    assert {row["effect_key"] for row in ledger} == set(billing_stats["effects"])
    # Calls per upstream are bounded by jobs x attempts x calls per attempt.
    for upstream, stats in (("crm", crm_stats), ("billing", billing_stats)):
        bound = sum((MAX_RETRIES + 1) * CALLS_PER_ATTEMPT[r.job_type][upstream] for r in requests)
        assert sum(stats["requests"].values()) <= bound
    assert all(result.ok for result in run_checks(store))
