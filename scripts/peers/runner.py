"""Peer benchmark harness: the ``noop`` scenario of ``syncbridge bench`` for another job queue.

Run with the peers' own Python (``syncbridge bench --peers`` creates that venv); prints one JSON
line: ``{"system", "version", "variant", "jobs", "succeeded", "seconds", "drain_seconds",
"steady_seconds", "exit_seconds"}``.

    python scripts/peers/runner.py pgqueuer --dsn postgresql://... --jobs 20000 \
        --processes 2 --concurrency 100

The database must be empty: the harness installs the peer's schema, bulk-enqueues ``--jobs``
no-op jobs, starts ``--processes`` worker processes that exit once the queue is drained, and
reads the peer's own tables for the last job's finish: ``seconds`` runs from worker start to
it, ``drain_seconds`` from the first job's start to it (the same two measures syncbridge's
``noop`` reports); ``steady_seconds`` runs between the successes at the 10th and 90th
percentile by time (as ``syncbridge.bench.measure.steady_ranks``); ``exit_seconds`` is worker
start to the last worker's exit.

With ``--enqueue-runs N`` it measures bulk enqueue instead (PgQueuer only): N timed calls of
``--jobs`` jobs each, printed as ``runs_seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


async def results(dsn: str, sql: str) -> tuple[int, float | None, float | None]:
    """Run a peer's ``RESULTS_SQL``: (succeeded jobs, first start, last success) in epoch
    seconds, read from the peer's own tables."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cursor = await conn.execute(sql)
        row = await cursor.fetchone()
        assert row is not None
        first, last = row[1], row[2]
        return (
            int(row[0]),
            None if first is None else float(first),
            None if last is None else float(last),
        )


def steady_ranks(count: int) -> tuple[int, int]:
    """The 10th and 90th percentile ranks, by finish time: syncbridge's own
    ``measure.steady_ranks`` (this script runs in the peers' venv, without syncbridge)."""
    return count // 10, count * 9 // 10


async def steady_seconds(dsn: str, sql: str, count: int) -> float:
    """Seconds between the successes at :func:`steady_ranks`, read from the peer's tables."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        bounds = []
        for rank in steady_ranks(count):
            cursor = await conn.execute(sql, (rank,))
            row = await cursor.fetchone()
            assert row is not None
            bounds.append(float(row[0]))
        return bounds[1] - bounds[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("peer", choices=["procrastinate", "pgqueuer"])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=None, help="pgqueuer only")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--worker", action="store_true", help="be one worker process")
    parser.add_argument("--enqueue-runs", type=int, default=0, help="pgqueuer only")
    args = parser.parse_args()
    peer = __import__(f"peer_{args.peer}")
    if args.enqueue_runs:
        if not hasattr(peer, "enqueue_runs"):
            sys.exit(f"{args.peer} has no bulk enqueue run")
        seconds, stored = asyncio.run(peer.enqueue_runs(args.dsn, args.jobs, args.enqueue_runs))
        report = {"system": args.peer, "version": peer.version(), "variant": "bulk"}
        report |= {"jobs": args.jobs, "stored": stored, "runs_seconds": seconds}
        print(json.dumps(report))
        return
    if args.worker:
        asyncio.run(peer.work(args.dsn, args.concurrency, args.batch_size))
        return

    asyncio.run(peer.setup(args.dsn, args.jobs))
    command = [sys.executable, __file__, args.peer, "--worker", "--dsn", args.dsn]
    command += ["--concurrency", str(args.concurrency)]
    if args.batch_size is not None:
        command += ["--batch-size", str(args.batch_size)]
    started_epoch = time.time()  # compared with the peer's own timestamps (same host)
    started = time.perf_counter()
    workers = [subprocess.Popen(command, stdout=sys.stderr) for _ in range(args.processes)]
    deadline = started + args.timeout
    for worker in workers:
        code = worker.wait(max(1.0, deadline - time.perf_counter()))
        if code != 0:
            sys.exit(f"{args.peer} worker exited with {code}")
    exited = time.perf_counter() - started
    succeeded, first, last = asyncio.run(results(args.dsn, peer.RESULTS_SQL))
    if first is None or last is None:
        sys.exit(f"{args.peer} recorded no finished job")
    steady = asyncio.run(steady_seconds(args.dsn, peer.FINISHED_AT_RANK_SQL, succeeded))
    report = {
        "system": args.peer,
        "version": peer.version(),
        "variant": peer.variant(args),
        "jobs": args.jobs,
        "succeeded": succeeded,
        "seconds": last - started_epoch,
        "drain_seconds": last - first,
        "steady_seconds": steady,
        "exit_seconds": exited,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
