"""Real worker processes for drills: started on this machine, always reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

FAST_ENV = {
    "SYNCBRIDGE_JOB_LEASE_SECONDS": "1",
    "SYNCBRIDGE_POLL_INTERVAL_SECONDS": "0.02",
    "SYNCBRIDGE_RESCUE_INTERVAL_SECONDS": "0.2",
    "SYNCBRIDGE_JOB_BACKOFF_SECONDS_BASE": "0",
    "SYNCBRIDGE_SHUTDOWN_GRACE_SECONDS": "5",
    # Drills call `syncbridge reconcile` themselves; the worker's periodic one would race them.
    "SYNCBRIDGE_RECONCILE_INTERVAL_SECONDS": "3600",
    # Tests reconcile right after a job ends; the settle time has tests of its own.
    "SYNCBRIDGE_RECONCILE_SETTLE_SECONDS": "0",
    "SYNCBRIDGE_LOG_FORMAT": "json",
}


def syncbridge_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNCBRIDGE_")}
    return env | FAST_ENV | {"SYNCBRIDGE_DATABASE_URL": database_url} | extra


def run_cli(database_url: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncbridge", *args],
        env=syncbridge_env(database_url, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextmanager
def worker_process(
    database_url: str, *args: str, log_path: Path | None = None, **extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    # Without a log file, stderr stays the test's own (pytest captures it and shows it on a
    # failure), so a hung worker's SIGUSR1 stack dump from stop() is never thrown away.
    log = open(log_path, "wb") if log_path else None  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "syncbridge", "worker", *args],
        env=syncbridge_env(database_url, **extra),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        yield process
    finally:
        stop(process)
        if log is not None:
            log.close()


def stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            # Hung: have it print where every thread is (worker only; SIGUSR1 stops any other
            # of our commands, which is what the SIGKILL below does anyway), then kill it.
            process.send_signal(signal.SIGUSR1)
            time.sleep(0.5)
            process.kill()
            process.wait(5)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
