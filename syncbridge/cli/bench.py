"""``syncbridge bench``: the benchmark scenarios, as a table or as JSON."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from syncbridge.bench.options import RSS_CONCURRENCIES, SCENARIOS, Options
from syncbridge.bench.result import BenchUsageError, Result
from syncbridge.bench.runner import plan, run
from syncbridge.cli.app import App
from syncbridge.cli.main import cli
from syncbridge.cli.output import emit_json, table

pass_app = click.make_pass_decorator(App)

COLUMNS: tuple[str, ...] = (
    *("system", "scenario", "variant", "backend", "jobs", "P x C", "seconds", "jobs/s"),
    *("drain jobs/s", "steady jobs/s", "p50 ms", "p95 ms", "p99 ms", "notes"),
)


@cli.command()
@click.argument("scenarios", nargs=-1, type=click.Choice(SCENARIOS))
@click.option("--jobs", type=click.IntRange(1), help="Jobs per scenario [default: per scenario].")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option(
    "--backlog",
    "backlog_size",
    type=click.IntRange(0),
    default=1_000_000,
    show_default=True,
    help="Extra pending jobs in the large backlog run.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=1, max=100_000),
    default=200.0,
    show_default=True,
    help="Enqueue rate of the latency scenario (jobs/s).",
)
@click.option("--rss", is_flag=True, help="noop at concurrency 1, 50 and 200 with worker RSS.")
@click.option(
    "--rss-at",
    type=click.IntRange(1, 1000),
    multiple=True,
    help="With --rss: these concurrencies instead (repeatable).",
)
@click.option("--sync-latency-ms", type=click.IntRange(0), default=20, show_default=True)
@click.option("--sync-fault-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--metrics", is_flag=True, help="Workers also serve Prometheus metrics.")
@click.option(
    "--peers",
    is_flag=True,
    help="Also run the peers (PostgreSQL): Procrastinate and PgQueuer after noop, PgQueuer's bulk "
    "enqueue after enqueue.",
)
@click.option(
    "--repeat",
    type=click.IntRange(1, 20),
    default=1,
    show_default=True,
    help="noop: run syncbridge and PgQueuer this many times each and keep each one's fastest "
    "drain (Procrastinate runs once). backlog: run both sizes this many times, taking turns, "
    "and keep each size's median drain (the lower middle run for an even N).",
)
@click.option("--timeout", type=click.FloatRange(min=1), default=1800.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON list.")
@pass_app
def bench(
    app: App,
    scenarios: tuple[str, ...],
    jobs: int | None,
    processes: int,
    concurrency: int,
    backlog_size: int,
    rate: float,
    rss: bool,
    rss_at: tuple[int, ...],
    sync_latency_ms: int,
    sync_fault_rate: float,
    metrics: bool,
    peers: bool,
    repeat: int,
    timeout: float,
    as_json: bool,
) -> None:
    """Benchmark SCENARIOS (noop, latency, enqueue, backlog, sync; default all).

    Each scenario runs in a fresh database created next to the configured one (a new
    PostgreSQL database on the same server, or a new SQLite file beside the configured one) and
    dropped afterwards: the configured database is never read or written. Progress goes to
    stderr; the results table (or, with --json, one JSON list) to stdout.
    """

    def progress(message: str) -> None:
        click.echo(f"bench: {message}", err=True)

    with tempfile.TemporaryDirectory(prefix="syncbridge-bench-logs-") as logs:
        options = Options(
            database_url=app.settings.database_url,
            work_dir=Path(logs),
            jobs=jobs,
            processes=processes,
            concurrency=concurrency,
            backlog=backlog_size,
            rate=rate,
            rss=rss,
            rss_concurrencies=rss_at or RSS_CONCURRENCIES,
            sync_latency_ms=sync_latency_ms,
            sync_fault_rate=sync_fault_rate,
            worker_metrics=metrics,
            timeout=timeout,
            repeat=repeat,
            progress=progress,
        )
        try:
            results = run(options, plan(scenarios, progress), with_peers=peers)
        except BenchUsageError as exc:
            raise click.UsageError(str(exc)) from None
    if as_json:
        emit_json([result.to_dict() for result in results])
    else:
        table(COLUMNS, [_row(result) for result in results], title="syncbridge bench")


def _row(result: Result) -> tuple[Any, ...]:
    extra = result.extra
    shape = f"{result.processes} x {result.concurrency}" if result.processes else ""
    return (
        result.system,
        result.scenario,
        result.variant,
        result.backend,
        result.jobs,
        shape,
        f"{result.seconds:.3f}",
        f"{result.jobs_per_s:,.0f}",
        f"{extra['drain_jobs_per_s']:,.0f}" if "drain_jobs_per_s" in extra else "",
        f"{steady:,.0f}" if (steady := _steady(extra)) is not None else "",
        result.p50_ms,
        result.p95_ms,
        result.p99_ms,
        _notes(extra),
    )


def _steady(extra: dict[str, Any]) -> float | None:
    """The steady rate; of repeated runs, the best (each run's is in the JSON)."""
    steady = extra.get("best_steady_jobs_per_s", extra.get("steady_jobs_per_s"))
    return None if steady is None else float(steady)


def _notes(extra: dict[str, Any]) -> str:
    notes = []
    if extra.get("rss_peak_kb"):
        notes.append(
            f"RSS warm {extra['rss_warm_kb'] / 1024:.0f} MB, end {extra['rss_end_kb'] / 1024:.0f}"
            f" MB, peak {extra['rss_peak_kb'] / 1024:.0f} MB"
        )
    if "of_bound" in extra and extra["of_bound"] is not None:
        notes.append(f"{extra['of_bound']:.0%} of bound {extra['bound_jobs_per_s']:,.0f}/s")
    if "version" in extra:
        notes.append(str(extra["version"]))
    return "; ".join(notes)
