"""Procrastinate side of the peer benchmark: schema, bulk defer, a draining worker, results.

A worker (``wait=False``) exits once the queue is caught up; it runs ``--concurrency`` jobs at
once, and the task is an ``async`` no-op.
"""

from __future__ import annotations

from argparse import Namespace
from importlib.metadata import version as package_version

import procrastinate

CHUNK = 5_000
QUEUE = "bench"


def make_app(dsn: str) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop", queue=QUEUE)
    async def noop() -> None:
        return None

    return app


def version() -> str:
    return f"procrastinate {package_version('procrastinate')}"


def variant(args: Namespace) -> str:
    return ""


async def setup(dsn: str, jobs: int) -> None:
    app = make_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        task = app.tasks["noop"]
        for start in range(0, jobs, CHUNK):
            await task.batch_defer_async(*({} for _ in range(min(CHUNK, jobs - start))))


# For runner.results: succeeded jobs, first start and last success, from its events.
RESULTS_SQL = (
    "SELECT (SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'),"
    " extract(epoch FROM min(at) FILTER (WHERE type = 'started')),"
    " extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded'))"
    " FROM procrastinate_events"
)
# For runner.steady_seconds: the epoch of the success at a rank (0-based) by time.
FINISHED_AT_RANK_SQL = (
    "SELECT extract(epoch FROM at) FROM procrastinate_events WHERE type = 'succeeded'"
    " ORDER BY at, id OFFSET %s LIMIT 1"
)


async def work(dsn: str, concurrency: int, batch_size: int | None) -> None:
    app = make_app(dsn)
    async with app.open_async():
        await app.run_worker_async(queues=[QUEUE], concurrency=concurrency, wait=False)
