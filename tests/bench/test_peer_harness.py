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


def test_steady_rate_spans_the_10th_to_the_90th_percentile_of_finishes() -> None:
    from syncbridge.bench.measure import steady_ranks, steady_rate

    assert steady_ranks(1_000) == (100, 900)
    assert steady_ranks(5) == (0, 4)
    assert steady_rate(1_000, 0.08) == pytest.approx(10_000)  # 800 jobs in 0.08 s
    assert steady_rate(1_000, 0.0) == 0.0


def noop_report(succeeded: int, drain: float, steady: float) -> str:
    body: dict[str, Any] = {"system": "pgqueuer", "version": "pgqueuer 1.6.0"}
    body |= {"variant": "batch 100", "jobs": JOBS, "succeeded": succeeded, "seconds": drain + 1}
    return json.dumps(body | {"drain_seconds": drain, "steady_seconds": steady, "exit_seconds": 9})


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_peer_noop_run_reports_its_drain_and_steady_rates(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = stand_in(tmp_path, monkeypatch, noop_report(JOBS, 0.1, 0.05))
    result = peers.run_noop(options(database_url, tmp_path), python, "pgqueuer", 100)
    assert result.extra["drain_jobs_per_s"] == pytest.approx(10_000)
    assert result.extra["steady_jobs_per_s"] == pytest.approx(16_000)  # 800 jobs in 0.05 s
    python = stand_in(tmp_path, monkeypatch, noop_report(JOBS - 1, 0.1, 0.05))
    with pytest.raises(BenchError, match="only 999 of 1000"):
        peers.run_noop(options(database_url, tmp_path), python, "pgqueuer", 100)


def test_noop_beside_peers_takes_turns_and_keeps_each_sides_fastest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow spell of the host must fall on every side alike: the repeated runs alternate
    instead of running all of syncbridge's first."""
    from dataclasses import replace

    from syncbridge.bench import runner

    order: list[str] = []
    rates = iter(float(n) for n in range(1, 100))

    def ours(opts: Options, concurrency: int) -> Result:
        order.append("syncbridge")
        return run_at(next(rates))

    def theirs(opts: Options, python: Path, peer: str, batch: int | None) -> Result:
        order.append(f"{peer} {batch}")
        result = run_at(next(rates))
        result.system, result.variant = peer, str(batch)
        return result

    monkeypatch.setattr(runner, "noop_once", ours)
    monkeypatch.setattr(peers, "run_noop", theirs)
    opts = replace(options("postgresql://unused", tmp_path), repeat=2)
    results = runner._noop_beside_peers(opts, tmp_path / "python")
    turn = ["syncbridge", "pgqueuer None", "pgqueuer 100"]
    assert order == turn + turn + ["procrastinate None"]
    assert [(r.system, r.extra["drain_jobs_per_s"]) for r in results] == [
        ("syncbridge", 4.0),
        ("procrastinate", 7.0),
        ("pgqueuer", 5.0),
        ("pgqueuer", 6.0),
    ]
    assert results[0].extra["runs_drain_jobs_per_s"] == [1.0, 4.0]
