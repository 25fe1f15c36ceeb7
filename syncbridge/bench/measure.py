"""What the benchmarks read back from the database: every timing comes from the rows the engine
wrote (attempt start and finish, job creation), not from the benchmark's own stopwatch alone."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, bindparam, func, select, text

from syncbridge.clock import SystemClock
from syncbridge.db.base import params_hash
from syncbridge.db.driver import driver_of
from syncbridge.db.queries import Store
from syncbridge.db.schema import attempts, jobs
from syncbridge.db.types import UTCDateTime
from syncbridge.models import EnqueueRequest
from syncbridge.states import AttemptOutcome

ENQUEUE_CHUNK = 10_000
SUCCEEDED = str(AttemptOutcome.SUCCEEDED)
CLOCK = SystemClock()


@dataclass(frozen=True)
class Window:
    """Succeeded attempts: how many, the first start and the last finish."""

    succeeded: int
    first_started: datetime | None
    last_finished: datetime | None

    def seconds_since(self, start: datetime) -> float:
        if self.last_finished is None:
            return 0.0
        return (self.last_finished - start).total_seconds()

    # The finishes of the jobs at ranks STEADY_RANKS of ``succeeded`` (see steady_ranks).
    steady_from: datetime | None = None
    steady_to: datetime | None = None

    @property
    def drain_seconds(self) -> float:
        if self.first_started is None or self.last_finished is None:
            return 0.0
        return (self.last_finished - self.first_started).total_seconds()

    @property
    def steady_seconds(self) -> float:
        if self.steady_from is None or self.steady_to is None:
            return 0.0
        return (self.steady_to - self.steady_from).total_seconds()


def steady_ranks(count: int) -> tuple[int, int]:
    """The 0-based ranks, by finish time, of the jobs whose finishes bound the steady window:
    the 10th and the 90th percentile. The rate between them leaves out the start (processes
    importing, connecting, a first claim) and the tail (the last batches of a drained queue),
    where systems differ by quirks of their start-up rather than by their rate; the peers'
    harness uses the same ranks (``scripts/peers/runner.py``)."""
    return count // 10, count * 9 // 10


def steady_rate(count: int, seconds: float) -> float:
    """Jobs per second between the finishes at :func:`steady_ranks`."""
    low, high = steady_ranks(count)
    return (high - low) / seconds if seconds > 0 else 0.0


def noop_requests(
    count: int, prefix: str, payload: dict[str, object] | None = None
) -> Iterator[EnqueueRequest]:
    for n in range(count):
        yield EnqueueRequest("noop", f"{prefix}{n}", payload or {}, 3)


# Threads of the "one-by-one, N callers" enqueue run.
ENQUEUE_CALLERS = 4


def enqueue_from_threads(store: Store, requests: list[EnqueueRequest], callers: int) -> None:
    """``Store.enqueue`` one request at a time from ``callers`` threads, each on its own share;
    an error in any thread is raised here."""
    shares = [requests[n::callers] for n in range(callers)]

    def enqueue_share(share: list[EnqueueRequest]) -> None:
        for request in share:
            store.enqueue(request)

    with ThreadPoolExecutor(callers, thread_name_prefix="bench-enqueue") as pool:
        for done in [pool.submit(enqueue_share, share) for share in shares]:
            done.result()


def driver_floor(store: Store, requests: Iterator[EnqueueRequest]) -> float:
    """Seconds to insert ``requests`` one by one with the statement and parameters
    ``Store.enqueue`` sends, straight through psycopg on one autocommit connection: no held
    connection, no retry, no ``Job`` built. What is left is the round trip and the commit's WAL
    flush, the floor under one-by-one enqueue."""
    autocommit = store.engine.execution_options(isolation_level="AUTOCOMMIT")
    with autocommit.connect() as conn:
        driver = driver_of(conn)
        begin = time.perf_counter()
        for request in requests:
            digest = params_hash(request.job_type, request.entity_id, request.payload)
            params = store.insert_one_params(request, digest)
            driver.execute(store.insert_one_sql, params, prepare=True).fetchone()
        return time.perf_counter() - begin


def enqueue_bulk(store: Store, requests: Iterator[EnqueueRequest]) -> int:
    """Enqueue through ``enqueue_many`` in chunks (results are dropped to bound memory)."""
    total = 0
    chunk: list[EnqueueRequest] = []
    for request in requests:
        chunk.append(request)
        if len(chunk) == ENQUEUE_CHUNK:
            total += len(store.enqueue_many(chunk))
            chunk = []
    if chunk:
        total += len(store.enqueue_many(chunk))
    return total


# Fills a backlog in one statement (a recursive CTE works on both backends): rows as
# ``enqueue_many`` writes them for a key-less ``noop`` job. ``params_hash`` is only ever compared
# for jobs with an idempotency key, so a placeholder does; ``lineage_id`` NULL means "itself".
FILL_BACKLOG = text(
    """
    WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :count)
    INSERT INTO jobs (job_type, entity_id, payload, state, attempt, budget_start, max_retries,
                      next_run_at, correlation_id, params_hash, created_at, updated_at)
    SELECT 'noop', :prefix || n, '{}', 'pending', 0, 0, 3,
           :now, 'backlog-' || n, 'backlog', :now, :now
    FROM seq
    """
)


def fill_backlog(engine: Engine, count: int, prefix: str, chunk: int = 100_000) -> None:
    """``count`` pending no-op jobs written straight in SQL (a million in seconds, where the
    benchmark is about draining a large queue, not about filling it)."""
    now = bindparam("now", CLOCK.now(), type_=UTCDateTime())
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        with engine.begin() as conn:
            conn.execute(FILL_BACKLOG.bindparams(now, count=size, prefix=f"{prefix}{start}-"))


def analyze(engine: Engine) -> None:
    """Fresh planner statistics after the benchmark's bulk load (``Store.refresh_statistics``):
    the benchmark measures a running queue, not the first minute after a bulk load."""
    Store(engine).refresh_statistics()


def succeeded_count(engine: Engine) -> int:
    query = select(func.count()).select_from(attempts).where(attempts.c.outcome == SUCCEEDED)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def window(engine: Engine, first: int | None = None) -> Window:
    """The window of all succeeded attempts, or of the ``first`` ones to finish."""
    done = select(attempts.c.started_at, attempts.c.finished_at).where(
        attempts.c.outcome == SUCCEEDED
    )
    if first is not None:
        done = done.order_by(attempts.c.finished_at).limit(first)
    sub = done.subquery()
    query = select(func.count(), func.min(sub.c.started_at), func.max(sub.c.finished_at))
    with engine.connect() as conn:
        count, started, finished = conn.execute(query).one()
        bounds = []
        for rank in steady_ranks(int(count)) if count else ():
            at_rank = select(sub.c.finished_at).order_by(sub.c.finished_at).offset(rank).limit(1)
            bounds.append(conn.execute(at_rank).scalar_one())
    return Window(int(count), started, finished, *bounds)


def start_latencies_ms(engine: Engine, entity_prefix: str) -> list[float]:
    """Enqueue to start of the first attempt, per job, in milliseconds."""
    query = (
        select(jobs.c.created_at, attempts.c.started_at)
        .join(attempts, attempts.c.job_id == jobs.c.id)
        .where(attempts.c.number == 1, jobs.c.entity_id.startswith(entity_prefix))
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [(started - created).total_seconds() * 1000 for created, started in rows]


def attempt_durations_ms(engine: Engine) -> list[float]:
    query = select(attempts.c.started_at, attempts.c.finished_at).where(
        attempts.c.finished_at.is_not(None)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [(finished - started).total_seconds() * 1000 for started, finished in rows]


def job_states(engine: Engine, job_type: str) -> dict[str, int]:
    query = (
        select(jobs.c.state, func.count()).where(jobs.c.job_type == job_type).group_by(jobs.c.state)
    )
    with engine.connect() as conn:
        return {str(state): int(count) for state, count in conn.execute(query).all()}


def unfinished_attempts(engine: Engine, job_type: str, limit: int = 5) -> list[str]:
    """How the attempts of jobs that did not succeed ended, for a benchmark's error message."""
    query = (
        select(
            jobs.c.id,
            jobs.c.state,
            jobs.c.next_run_at,
            attempts.c.number,
            attempts.c.outcome,
            attempts.c.error_class,
            attempts.c.error_message,
        )
        .join(attempts, attempts.c.job_id == jobs.c.id)
        .where(jobs.c.job_type == job_type, jobs.c.state != "succeeded")
        .order_by(jobs.c.id, attempts.c.number)
        .limit(limit * 4)
    )
    with engine.connect() as conn:
        return [
            f"job {row.id} ({row.state}, next run {row.next_run_at}): attempt {row.number} "
            f"{row.outcome} {row.error_class or ''} {(row.error_message or '')[:200]}".strip()
            for row in conn.execute(query).all()
        ]


def rss_summary(samples: Sequence[int]) -> dict[str, int | float | None]:
    """Peak RSS, RSS after warm-up (a quarter of the way through the run) and at the end, and
    the growth between the last two."""
    if not samples:
        return {
            "rss_peak_kb": None,
            "rss_warm_kb": None,
            "rss_end_kb": None,
            "rss_growth_pct": None,
        }
    warm = samples[len(samples) // 4]
    end = samples[-1]
    return {
        "rss_peak_kb": max(samples),
        "rss_warm_kb": warm,
        "rss_end_kb": end,
        "rss_growth_pct": round((end - warm) / warm * 100, 1) if warm else None,
    }
