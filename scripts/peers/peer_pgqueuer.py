"""PgQueuer side of the peer benchmark: schema, bulk enqueue, a draining worker, results; and
its bulk enqueue rate (``enqueue_runs``) for the ``enqueue`` scenario.

A worker (``QueueExecutionMode.drain``) exits once the queue is empty. PgQueuer runs async
handlers with no thread pool and, by default, no cap on jobs in flight: its knob is the dequeue
``batch_size`` (its own default is 10), so ``--concurrency`` does not apply to it.
"""

from __future__ import annotations

import time
from argparse import Namespace
from importlib.metadata import version as package_version

import psycopg
from pgqueuer import PsycopgDriver, Queries, QueueManager
from pgqueuer.domain.types import QueueExecutionMode
from pgqueuer.models import Job

CHUNK = 5_000
DEFAULT_BATCH = 10


def version() -> str:
    return f"pgqueuer {package_version('pgqueuer')}"


def variant(args: Namespace) -> str:
    batch = args.batch_size or DEFAULT_BATCH
    return f"batch {batch}" + (" (default)" if batch == DEFAULT_BATCH else "")


async def setup(dsn: str, jobs: int) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        queries = Queries(PsycopgDriver(conn))
        await queries.install()
        for start in range(0, jobs, CHUNK):
            size = min(CHUNK, jobs - start)
            await queries.enqueue(["noop"] * size, [None] * size, [0] * size)


async def enqueue_runs(dsn: str, jobs: int, runs: int) -> tuple[list[float], int]:
    """Seconds of each of ``runs`` bulk enqueues of ``jobs`` no-op jobs, each one call of its
    bulk API (one multi-row INSERT), after a small warm-up call, as syncbridge's side does;
    and how many of those jobs its queue table then holds."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        queries = Queries(PsycopgDriver(conn))
        await queries.install()
        await queries.enqueue(["noop"] * 10, [None] * 10, [0] * 10)
        seconds = []
        for _ in range(runs):
            entrypoints, payloads, priorities = ["noop"] * jobs, [None] * jobs, [0] * jobs
            begin = time.perf_counter()
            await queries.enqueue(entrypoints, payloads, priorities)
            seconds.append(time.perf_counter() - begin)
        cursor = await conn.execute("SELECT count(*) - 10 FROM pgqueuer")
        row = await cursor.fetchone()
        assert row is not None
        return seconds, int(row[0])


# For runner.results: succeeded jobs, first pick and last success, from ``pgqueuer_log``.
RESULTS_SQL = (
    "SELECT count(*) FILTER (WHERE status = 'successful'),"
    " extract(epoch FROM min(created) FILTER (WHERE status = 'picked')),"
    " extract(epoch FROM max(created) FILTER (WHERE status = 'successful'))"
    " FROM pgqueuer_log"
)
# For runner.steady_seconds: the epoch of the success at a rank (0-based) by time.
FINISHED_AT_RANK_SQL = (
    "SELECT extract(epoch FROM created) FROM pgqueuer_log WHERE status = 'successful'"
    " ORDER BY created, id OFFSET %s LIMIT 1"
)


async def work(dsn: str, concurrency: int, batch_size: int | None) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        manager = QueueManager(Queries(PsycopgDriver(conn)))

        @manager.entrypoint("noop")
        async def noop(job: Job) -> None:
            return None

        await manager.run(batch_size=batch_size or DEFAULT_BATCH, mode=QueueExecutionMode.drain)
