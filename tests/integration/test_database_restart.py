"""A real worker survives a PostgreSQL restart under load: it reconnects, nothing is lost, and no
job stays running without a live owner longer than its lease."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from syncbridge import migrate
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.invariants import run_checks
from syncbridge.models import EnqueueRequest
from tests.pg_cluster import server_bindir, throwaway_cluster
from tests.processes import wait_for, worker_process

pytestmark = pytest.mark.processes

JOBS = 300


def test_worker_rides_out_a_database_restart(tmp_path: Path) -> None:
    if server_bindir() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true: PostgreSQL server binaries are required for this drill")
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl); install postgresql")
    with throwaway_cluster() as cluster:
        engine = make_engine(cluster.url)
        migrate.upgrade(engine)
        store = Store(engine)
        for n in range(JOBS):
            store.enqueue(EnqueueRequest("noop", f"e{n}", {"sleep": 0.02}, 3))
        log = tmp_path / "worker.log"
        with worker_process(cluster.url, "--concurrency", "4", log_path=log) as worker:
            wait_for(lambda: store.counts_by_state()["succeeded"] >= 30, 60, "some progress")
            engine.dispose()
            cluster.stop("immediate")  # a crash, not a polite shutdown
            cluster.start()
            wait_for(
                lambda: store.counts_by_state()["succeeded"] == JOBS, 120, "all jobs to succeed"
            )
            assert worker.poll() is None, "the worker must survive the outage"
        events = [
            json.loads(line)["event"]
            for line in log.read_text().splitlines()
            if line.startswith("{")
        ]
        assert events.count("database_lost") >= 1
        assert events.count("database_reconnected") >= 1
        assert events.count("database_lost") == events.count("database_reconnected")
        counts = store.counts_by_state()
        assert counts["succeeded"] == JOBS and counts["running"] == 0
        assert all(result.ok for result in run_checks(store)), run_checks(store)
        engine.dispose()
