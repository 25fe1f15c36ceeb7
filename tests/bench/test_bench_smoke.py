"""``syncbridge bench`` smoke runs: every scenario with tiny numbers on SQLite and PostgreSQL,
driven through the CLI as a user would. No timing is asserted, only the JSON shape, that every
job succeeded, and that the configured database was left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect

from syncbridge.bench.options import Options
from syncbridge.bench.result import BenchError, BenchUsageError
from syncbridge.bench.runner import plan, run
from syncbridge.db.engine import normalise_url
from syncbridge.plugins import Registry

BASE_KEYS = {"scenario", "backend", "jobs", "seconds", "jobs_per_s", "p50_ms", "p99_ms"}
FAST = {"SYNCBRIDGE_POLL_INTERVAL_SECONDS": "0.05", "SYNCBRIDGE_LOG_LEVEL": "info"}


def bench(database_url: str, *args: str) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCBRIDGE_")} | FAST
    done = subprocess.run(
        [sys.executable, "-m", "syncbridge", "--database-url", database_url, "bench", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert isinstance(results, list)
    for result in results:
        assert set(result) >= BASE_KEYS, result
        assert result["backend"] == database_url.split(":")[0].split("+")[0]
        assert result["seconds"] >= 0 and result["jobs_per_s"] >= 0
    return results


def untouched(database_url: str) -> bool:
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            return "jobs" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_every_engine_scenario_runs_and_every_job_succeeds(database_url: str) -> None:
    results = bench(
        database_url,
        *("noop", "latency", "enqueue", "backlog"),
        *("--jobs", "20", "--backlog", "40", "--concurrency", "4", "--rate", "400", "--json"),
    )
    by_scenario: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_scenario.setdefault(result["scenario"], []).append(result)
    assert sorted(by_scenario) == ["backlog", "enqueue", "latency", "noop"]
    [noop] = by_scenario["noop"]
    assert noop["succeeded"] == noop["jobs"] == 20 and noop["drain_jobs_per_s"] > 0
    [latency] = by_scenario["latency"]
    assert latency["succeeded"] == 20
    assert 0 <= latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
    variants = {"bulk", "one-by-one", "one-by-one, 4 callers"}
    if database_url.startswith("postgresql"):  # the same insert straight through psycopg
        variants.add("one-by-one, driver floor")
    assert {r["variant"] for r in by_scenario["enqueue"]} == variants
    assert all(r["succeeded"] == 20 for r in by_scenario["enqueue"])
    backlog = by_scenario["backlog"]
    assert [r["pending"] for r in backlog] == [1020, 60]
    assert all(r["succeeded"] == 20 for r in backlog)
    assert untouched(database_url)


@pytest.mark.processes
def test_sync_runs_customer_jobs_through_the_mocks(database_url: str) -> None:
    [sync] = bench(
        database_url,
        *("sync", "--jobs", "8", "--concurrency", "4", "--sync-latency-ms", "5", "--json"),
    )
    assert sync["scenario"] == "sync" and sync["succeeded"] == 8
    assert sync["upstream_calls_per_job"] >= 1 and sync["bound_jobs_per_s"] > 0
    # The profile of the bound: who used the CPU during the run.
    assert 0 < sync["cpu_machine_busy_share"] <= 1
    assert sync["cpu_workers_cores"] > 0 and sync["cpu_mocks_cores"] > 0
    assert untouched(database_url)


def test_worker_memory_is_sampled_at_the_chosen_concurrencies(database_url: str) -> None:
    results = bench(database_url, "noop", "--jobs", "30", "--rss", "--rss-at", "2", "--json")
    [noop] = results
    assert noop["concurrency"] == 2 and noop["succeeded"] == 30
    assert 0 < noop["rss_warm_kb"] <= noop["rss_peak_kb"]
    assert 0 < noop["rss_end_kb"] <= noop["rss_peak_kb"]
    assert untouched(database_url)


def test_sync_without_the_customer_job_type_is_refused_up_front(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("syncbridge.bench.sync.load_registry", lambda: Registry())
    notes: list[str] = []
    with pytest.raises(BenchError, match="`customer` job type"):
        plan(["noop", "sync"], notes.append)
    assert "sync" not in plan([], notes.append)
    assert notes and "skipping sync" in notes[0]


def test_unsuitable_databases_are_refused(tmp_path: Any) -> None:
    memory = Options(database_url="sqlite://", work_dir=tmp_path, jobs=1, progress=lambda _: None)
    with pytest.raises(BenchError, match="in-memory"):
        run(memory, ["enqueue"])
    sqlite_file = Options(
        database_url=f"sqlite:///{tmp_path}/x.db", work_dir=tmp_path, progress=lambda _: None
    )
    with pytest.raises(BenchError, match="PostgreSQL"):
        run(sqlite_file, ["noop"], with_peers=True)
    # Ignored options are refused first, before any peer venv or database is made.
    with pytest.raises(BenchUsageError, match="--peers compares"):
        run(sqlite_file, ["latency"], with_peers=True)
    with pytest.raises(BenchUsageError, match="noop and backlog scenarios"):
        run(replace(sqlite_file, repeat=2), ["enqueue"])
    assert not (tmp_path / "x.db").exists()


def test_repeat_keeps_the_fastest_run_and_records_every_run(database_url: str) -> None:
    [noop] = bench(
        database_url, "noop", "--jobs", "20", "--concurrency", "4", "--repeat", "2", "--json"
    )
    runs = noop["runs_drain_jobs_per_s"]
    assert len(runs) == 2 and noop["drain_jobs_per_s"] == max(runs)
    steady = noop["runs_steady_jobs_per_s"]
    assert len(steady) == 2 and noop["best_steady_jobs_per_s"] == max(steady)
    assert all(rate > 0 for rate in steady)  # read back from both databases' attempt rows
    assert noop["succeeded"] == 20
    assert untouched(database_url)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        *((["noop", "--repeat", count], "--repeat") for count in ("0", "21", "two")),
        (["noop", "--rss", "--repeat", "2"], "--repeat does not apply to --rss"),
        (["latency", "--repeat", "3"], "noop and backlog scenarios"),
        (["latency", "--peers"], "--peers compares the noop and enqueue"),
    ],
)
def test_bad_options_and_options_that_would_be_ignored_are_usage_errors(
    args: list[str], message: str, tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    command = [sys.executable, "-m", "syncbridge", "--database-url", url, "bench", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "x.db").exists()  # nothing made, nothing run
