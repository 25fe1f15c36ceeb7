"""Commands that run things: migrate and worker."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
from types import FrameType

import click
from sqlalchemy.exc import DBAPIError

from syncbridge import migrate as migrations
from syncbridge.cli.app import App
from syncbridge.cli.durations import parse_age
from syncbridge.cli.main import cli
from syncbridge.db.engine import IN_MEMORY_REFUSAL, driver_message, is_in_memory_sqlite
from syncbridge.errors import DatabaseNotReady
from syncbridge.worker import WORKER_ID_MAX, Worker, worker_id_problem

pass_app = click.make_pass_decorator(App)


def _checked_worker_id(value: str | None) -> str | None:
    problem = None if value is None else worker_id_problem(value)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="'--worker-id'")
    return value


@cli.command()
@pass_app
def migrate(app: App) -> None:
    """Bring the schema to head (Alembic); safe to run twice."""
    engine = app.raw_store.engine
    # Alembic configures stdlib logging chattily; keep our stderr to our own lines.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        migrations.upgrade(engine)
    except DBAPIError as exc:
        raise DatabaseNotReady(
            f"database unreachable at {engine.url.render_as_string(hide_password=True)}: "
            f"{driver_message(exc)}"
        ) from None
    click.echo(f"schema at head ({migrations.head_revision()})")


@cli.command()
@click.option("--concurrency", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--burst", is_flag=True, help="Exit once nothing is due and nothing is in flight.")
@click.option("--job-type", "job_types", multiple=True, help="Only these job types (repeatable).")
@click.option(
    "--worker-id",
    callback=lambda ctx, param, value: _checked_worker_id(value),
    help=f"Defaults to host-pid-random; 1 to {WORKER_ID_MAX} characters, no control characters.",
)
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve Prometheus metrics.")
@click.option(
    "--prune-older-than",
    help="Retention: every prune interval, delete finished jobs older than this (7d, 12h); "
    "default SYNCBRIDGE_RETENTION_SECONDS, unset keeps everything.",
)
@pass_app
def worker(
    app: App,
    concurrency: int,
    burst: bool,
    job_types: tuple[str, ...],
    worker_id: str | None,
    metrics_port: int | None,
    prune_older_than: str | None,
) -> None:
    """Run jobs. SIGTERM/SIGINT: claim nothing more, drain, release the rest, exit 0."""
    # Handlers first: a stop that comes while the worker is being set up (plugins, metrics,
    # clients, a database that does not answer yet) ends the process at once with 0, as a
    # stop does, instead of the signal's default (143). Nothing is claimed or registered
    # before the worker runs, so there is nothing to drain. No lock is taken in the handler.
    running: list[Worker] = []

    def _stop(signum: int, _frame: FrameType | None) -> None:
        if not running:
            raise SystemExit(0)
        running[0].request_stop_from_signal()  # takes no lock: see its docstring

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    from syncbridge.upstream import build_upstreams, close_upstreams

    settings = app.settings
    if is_in_memory_sqlite(settings.database_url):
        raise click.UsageError(IN_MEMORY_REFUSAL)
    if prune_older_than is not None:
        age = parse_age(prune_older_than, "--prune-older-than")
        if age <= 0:
            raise click.BadParameter("must be longer than 0", param_hint="--prune-older-than")
        settings = settings.model_copy(update={"retention_seconds": age})
    store, registry = app.worker_store, app.registry
    for name in job_types:
        registry.get(name)
    on_event = on_response = None
    if metrics_port is not None:
        from syncbridge.metrics import instrument_worker

        on_event, on_response = instrument_worker(
            metrics_port,
            store,
            list(job_types) or sorted(registry.job_types),
            3 * settings.job_lease_seconds,
        )
    upstreams = build_upstreams(settings, on_response=on_response)
    runner = Worker(
        store,
        registry,
        settings,
        concurrency=concurrency,
        job_types=list(job_types) or None,
        worker_id=worker_id,
        burst=burst,
        upstreams=upstreams,
        on_event=on_event,
    )
    running.append(runner)
    # Every thread's stack to stderr, from the C level (so it answers even when the loop is
    # stuck): for a worker that will not stop, as Sidekiq's TTIN.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        runner.run()
    finally:
        close_upstreams(upstreams)
    if runner.stuck_threads:
        # A handler that ignores its stop request cannot be killed from Python; its job was
        # already recorded (timeout or released), so leave without waiting for the thread.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
