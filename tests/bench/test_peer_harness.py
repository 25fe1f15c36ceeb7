"""The peers' side of ``syncbridge bench`` without the peers: a stand-in for the peers' Python
prints what the harness would, so that reading its report (the median, the stored-job check,
a failed or silent run) is tested without installing Procrastinate or PgQueuer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syncbridge.bench import peers
from syncbridge.bench.options import BULK_RUNS, Options
from syncbridge.bench.result import BenchError, Result, fastest

JOBS = 1_000


def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, code: int = 0) -> Path:
    """An executable that ignores its arguments, prints ``output`` and exits with ``code``."""
    script = tmp_path / "python"
    script.write_text('#!/bin/sh\nprintf "%s\\n" "$STAND_IN_OUTPUT"\nexit "$STAND_IN_CODE"\n')
    script.chmod(0o755)
    monkeypatch.setenv("STAND_IN_OUTPUT", output)
    monkeypatch.setenv("STAND_IN_CODE", str(code))
    return script


def report(stored: int, seconds: list[float]) -> str:
    body: dict[str, Any] = {"system": "pgqueuer", "version": "pgqueuer 1.6.0", "variant": "bulk"}
    return json.dumps(body | {"jobs": JOBS, "stored": stored, "runs_seconds": seconds})


def options(database_url: str, tmp_path: Path) -> Options:
    return Options(database_url, tmp_path, jobs=JOBS, progress=lambda _: None)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_pgqueuers_bulk_enqueue_is_the_median_of_its_runs(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = stand_in(tmp_path, monkeypatch, report(JOBS * BULK_RUNS, [0.05, 0.02, 0.04]))
    [result] = peers.run_enqueue(options(database_url, tmp_path), python)
    assert (result.system, result.variant, result.scenario) == ("pgqueuer", "bulk", "enqueue")
    assert result.seconds == 0.04 and result.jobs_per_s == pytest.approx(25_000)
    assert result.extra["runs_jobs_per_s"] == [20_000.0, 50_000.0, 25_000.0]  # in run order


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("output", "code", "message"),
    [
        (report(JOBS * BULK_RUNS - 1, [0.1] * BULK_RUNS), 0, "jobs stored"),
        ("Traceback: boom", 1, "benchmark failed"),
        ("", 0, "printed no JSON"),
        ("not json", 0, "printed no JSON"),
    ],
)
def test_a_peer_run_that_fails_or_falls_short_is_an_error(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    output: str,
    code: int,
    message: str,
) -> None:
    python = stand_in(tmp_path, monkeypatch, output, code)
    with pytest.raises(BenchError, match=message):
        peers.run_enqueue(options(database_url, tmp_path), python)


def run_at(drain: float) -> Result:
    return Result("noop", "postgresql", 100, 1.0, extra={"drain_jobs_per_s": drain})


def test_fastest_keeps_the_best_run_wherever_it_comes_and_lists_every_run_in_order() -> None:
    best = fastest([run_at(10.0), run_at(30.0), run_at(20.0)])
    assert best.extra["drain_jobs_per_s"] == 30.0
    assert best.extra["runs_drain_jobs_per_s"] == [10.0, 30.0, 20.0]
    single = fastest([run_at(5.0)])
    assert "runs_drain_jobs_per_s" not in single.extra  # one run: nothing to list
