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


# For runner.results: succeeded jobs, first pick and last success, from ``pgqueuer_log``.
RESULTS_SQL = (
    "SELECT count(*) FILTER (WHERE status = 'successful'),"
    " extract(epoch FROM min(created) FILTER (WHERE status = 'picked')),"
    " extract(epoch FROM max(created) FILTER (WHERE status = 'successful'))"
    " FROM pgqueuer_log"
)


async def work(dsn: str, concurrency: int, batch_size: int | None) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        manager = QueueManager(Queries(PsycopgDriver(conn)))

        @manager.entrypoint("noop")
        async def noop(job: Job) -> None:
            return None

        await manager.run(batch_size=batch_size or DEFAULT_BATCH, mode=QueueExecutionMode.drain)
