"""``--peers``: Procrastinate and PgQueuer on the same PostgreSQL, same job count, processes and
concurrency, in the same run. They live in a venv of their own under a cache folder (installed
from PyPI by name on first use) and are driven by ``scripts/peers/*.py``."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syncbridge.bench.measure import steady_rate
from syncbridge.bench.options import BULK_RUNS, Options
from syncbridge.bench.result import BenchError, Result
from syncbridge.bench.sandbox import postgres_database

# (peer, dequeue batch): PgQueuer at its default batch (10) and at the 100 it is fastest with.
PEER_RUNS: tuple[tuple[str, int | None], ...] = (
    ("procrastinate", None),
    ("pgqueuer", None),
    ("pgqueuer", 100),
)
# Pinned: the versions issue #8 measured and docs/performance.md reports.
PACKAGES = ("procrastinate==3.10.0", "pgqueuer==1.6.0", "psycopg[binary]")
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "peers"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "syncbridge-bench"


def ensure_venv(progress: Callable[[str], None]) -> Path:
    """The peers' Python, creating and filling their venv on first use."""
    if not (SCRIPTS / "runner.py").is_file():
        raise BenchError(f"--peers needs the scripts in {SCRIPTS} (run from a source checkout)")
    venv = cache_dir() / "peers-venv"
    python = venv / "bin" / "python"
    if _has_peers(python):
        return python
    progress(f"installing {', '.join(PACKAGES)} into {venv}")
    steps = [[sys.executable, "-m", "venv", str(venv)]] if not python.exists() else []
    steps.append([str(python), "-m", "pip", "install", "--quiet", *PACKAGES])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(step)} failed:\n{done.stderr[-1500:]}")
    if not _has_peers(python):
        raise BenchError(f"the peers venv at {venv} has no procrastinate or pgqueuer")
    return python


def _has_peers(python: Path) -> bool:
    if not python.exists():
        return False
    check = [str(python), "-c", "import procrastinate, pgqueuer"]
    return subprocess.run(check, capture_output=True, check=False).returncode == 0


def run_enqueue(opts: Options, python: Path) -> list[Result]:
    """PgQueuer's bulk enqueue, measured as the ``enqueue`` scenario measures ours: a warm-up,
    then ``BULK_RUNS`` calls of ``--jobs`` jobs each; the median counts."""
    count = opts.jobs_for("enqueue")
    opts.progress(f"peers: pgqueuer bulk enqueue, {BULK_RUNS} x {count} jobs")
    with postgres_database(opts.database_url, "pgqueuer") as url:
        command = _runner_command(python, "pgqueuer", url, count)
        command += ["--enqueue-runs", str(BULK_RUNS)]
        report = _report_of("pgqueuer", command, opts.timeout)
    if report["stored"] != count * BULK_RUNS:
        raise BenchError(f"pgqueuer: {report['stored']} of {count * BULK_RUNS} jobs stored")
    runs = report["runs_seconds"]
    return [
        Result(
            "enqueue",
            "postgresql",
            count,
            statistics.median(runs),
            system="pgqueuer",
            variant="bulk",
            succeeded=count,
            extra={
                "version": report["version"],
                "runs_jobs_per_s": [round(count / seconds, 1) for seconds in runs],
            },
        )
    ]


def run_noop(opts: Options, python: Path, peer: str, batch: int | None) -> Result:
    """One run of ``peer``'s no-op drain (the runner decides how often and in which order)."""
    count = opts.jobs_for("noop")
    opts.progress(f"peers: {peer}, {count} jobs, {opts.processes} x {opts.concurrency}")
    with postgres_database(opts.database_url, peer) as url:
        command = _runner_command(python, peer, url, count)
        command += ["--processes", str(opts.processes)]
        command += ["--concurrency", str(opts.concurrency), "--timeout", str(opts.timeout)]
        if batch is not None:
            command += ["--batch-size", str(batch)]
        report = _report_of(peer, command, opts.timeout)
    if report["succeeded"] != count:
        raise BenchError(f"{peer}: only {report['succeeded']} of {count} jobs finished")
    drain = report["drain_seconds"]
    return Result(
        "noop",
        "postgresql",
        count,
        report["seconds"],
        system=peer,
        variant=report.get("variant", ""),
        processes=opts.processes,
        concurrency=opts.concurrency,
        succeeded=report["succeeded"],
        extra={
            "version": report["version"],
            "exit_seconds": round(report["exit_seconds"], 4),
            "drain_seconds": round(drain, 4),
            "drain_jobs_per_s": round(count / drain, 1) if drain > 0 else 0.0,
            "steady_jobs_per_s": round(steady_rate(count, report["steady_seconds"]), 1),
        },
    )


def _runner_command(python: Path, peer: str, url: str, jobs: int) -> list[str]:
    """``scripts/peers/runner.py`` for ``peer`` on the database ``url`` with ``jobs`` jobs."""
    return [
        str(python),
        str(SCRIPTS / "runner.py"),
        peer,
        "--dsn",
        _libpq(url),
        "--jobs",
        str(jobs),
    ]


def _report_of(peer: str, command: list[str], timeout: float) -> dict[str, Any]:
    """Run a peer harness command; its last line of output, as JSON."""
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout + 120, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"{peer} benchmark failed:\n{done.stderr[-2000:]}")
    try:
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"{peer} benchmark printed no JSON:\n{done.stdout[-500:]}") from None
    return report


def _libpq(url: str) -> str:
    """``postgresql+psycopg://`` (SQLAlchemy) to ``postgresql://`` (libpq, asyncpg)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)
