"""PgQueuer side of the peer benchmark: schema, bulk enqueue, a draining worker, results.

A worker (``QueueExecutionMode.drain``) exits once the queue is empty. PgQueuer runs async
handlers with no thread pool and, by default, no cap on jobs in flight: its knob is the dequeue
``batch_size`` (its own default is 10), so ``--concurrency`` does not apply to it.
"""

from __future__ import annotations

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


async def results(dsn: str) -> tuple[int, float | None, float | None]:
    """Successful jobs, first pick and last success (epoch seconds, from ``pgqueuer_log``)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'successful'),"
            " extract(epoch FROM min(created) FILTER (WHERE status = 'picked')),"
            " extract(epoch FROM max(created) FILTER (WHERE status = 'successful'))"
            " FROM pgqueuer_log"
        )
        row = await cursor.fetchone()
        assert row is not None
        first, last = row[1], row[2]
        return (
            int(row[0]),
            None if first is None else float(first),
            None if last is None else float(last),
        )


async def work(dsn: str, concurrency: int, batch_size: int | None) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        manager = QueueManager(Queries(PsycopgDriver(conn)))

        @manager.entrypoint("noop")
        async def noop(job: Job) -> None:
            return None

        await manager.run(batch_size=batch_size or DEFAULT_BATCH, mode=QueueExecutionMode.drain)
