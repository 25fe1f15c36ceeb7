"""Real worker processes against one database: races, SIGKILL recovery, SIGTERM drain."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from syncbridge.db.queries import Store
from syncbridge.db.schema import attempts, jobs
from syncbridge.models import EnqueueRequest
from syncbridge.states import JobState
from tests.conftest import truncate
from tests.processes import stop, wait_for, worker_process

pytestmark = pytest.mark.processes


def test_two_workers_race_for_a_thousand_jobs(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    truncate(engine)
    store = Store(engine)
    for n in range(1000):
        store.enqueue(EnqueueRequest("noop", f"e{n}", {}, 3))
    with (
        worker_process(
            database_url,
            "--burst",
            "--concurrency",
            "8",
            "--worker-id",
            "A",
            log_path=tmp_path / "a.log",
        ) as a,
        worker_process(
            database_url,
            "--burst",
            "--concurrency",
            "8",
            "--worker-id",
            "B",
            log_path=tmp_path / "b.log",
        ) as b,
    ):
        assert a.wait(120) == 0, (tmp_path / "a.log").read_text()[-2000:]
        assert b.wait(120) == 0, (tmp_path / "b.log").read_text()[-2000:]
    with engine.connect() as conn:
        states = dict(conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)).all())
        attempt_numbers = set(conn.execute(select(jobs.c.attempt)).scalars())
        rows = conn.execute(select(attempts.c.outcome, attempts.c.worker_id)).all()
    assert states == {"succeeded": 1000}
    assert attempt_numbers == {1}  # nobody claimed a job twice
    assert len(rows) == 1000 and {outcome for outcome, _ in rows} == {"succeeded"}
    by_worker = {worker: sum(1 for _, w in rows if w == worker) for worker in ("A", "B")}
    assert sum(by_worker.values()) == 1000


def test_sigkilled_worker_job_is_recovered_after_its_lease(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    truncate(engine)
    store = Store(engine)
    job = store.enqueue(EnqueueRequest("noop", "slow", {"sleep": 60, "sleep_attempts": 1}, 3)).job
    with worker_process(database_url, "--worker-id", "doomed") as doomed:
        wait_for(lambda: store.get_job(job.id).state is JobState.RUNNING, 30, "the claim")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    # Not --burst: a burst worker started before the lease expires rightly finds nothing due.
    with worker_process(database_url, "--worker-id", "rescuer", log_path=tmp_path / "r.log"):
        wait_for(lambda: store.get_job(job.id).state is JobState.SUCCEEDED, 60, "the rescue")
    after = store.get_job(job.id)
    assert after.state is JobState.SUCCEEDED
    outcomes = [(a.worker_id, a.outcome) for a in store.attempts_of(job.id)]
    assert outcomes == [("doomed", "lease_expired"), ("rescuer", "succeeded")]


def test_sigterm_drains_and_releases_without_charging(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    truncate(engine)
    store = Store(engine)
    quick = store.enqueue(EnqueueRequest("noop", "quick", {"sleep": 0.5}, 0)).job
    stuck = store.enqueue(EnqueueRequest("noop", "stuck", {"sleep": 60}, 0)).job
    with worker_process(
        database_url,
        "--concurrency",
        "2",
        log_path=tmp_path / "w.log",
        SYNCBRIDGE_SHUTDOWN_GRACE_SECONDS="2",
    ) as process:
        wait_for(
            lambda: (
                store.get_job(stuck.id).state is JobState.RUNNING
                and store.get_job(quick.id).state is JobState.RUNNING
            ),
            30,
            "both jobs to run",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        stop(process)
    assert store.get_job(quick.id).state is JobState.SUCCEEDED
    released = store.get_job(stuck.id)
    assert released.state is JobState.PENDING and released.charged_attempts == 0
    assert [a.outcome for a in store.attempts_of(stuck.id)] == ["released"]


def test_sigusr1_prints_every_threads_stack_and_the_worker_runs_on(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    truncate(engine)
    store = Store(engine)
    job = store.enqueue(EnqueueRequest("noop", "held", {"sleep": 60}, 0)).job
    log = tmp_path / "w.log"
    with worker_process(
        database_url, log_path=log, SYNCBRIDGE_SHUTDOWN_GRACE_SECONDS="1"
    ) as process:
        wait_for(lambda: store.get_job(job.id).state is JobState.RUNNING, 30, "the claim")

        def dumped_inside_the_handler() -> bool:
            # The claim commits before a handler thread picks the job up: a dump sent at once
            # may show no handler yet, so ask again until one does (each signal adds a dump).
            process.send_signal(signal.SIGUSR1)
            time.sleep(0.2)
            return "in run_noop" in log.read_text(errors="replace")

        wait_for(dumped_inside_the_handler, 20, "a stack dump inside the handler")
        assert process.poll() is None  # still running, still holding its job
        assert store.get_job(job.id).state is JobState.RUNNING
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    dump = log.read_text(errors="replace")
    assert dump.count("(most recent call first)") >= 3  # loop, handler, listener or watcher
    assert "in run" in dump and "worker.py" in dump
    assert store.get_job(job.id).state is JobState.PENDING  # released at the stop, as usual
