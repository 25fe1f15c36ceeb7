"""Processes a benchmark starts: ``syncbridge worker`` and the mock upstreams. Every one is
started with its own log file and is always reaped, even when the run fails."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from syncbridge.bench.result import BenchError

STOP_GRACE_SECONDS = 30.0


def child_env(database_url: str, **extra: str) -> dict[str, str]:
    """The caller's environment (so ``SYNCBRIDGE_*`` tuning reaches the workers) pointed at the
    benchmark database."""
    return dict(os.environ) | {"SYNCBRIDGE_DATABASE_URL": database_url} | extra


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    log_path: Path
    rss_kb: list[int] = field(default_factory=list)

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start(command: Sequence[str], env: dict[str, str], log_path: Path) -> Proc:
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            list(command), env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
        )
    return Proc(process, log_path)


def stop(proc: Proc, grace: float = STOP_GRACE_SECONDS) -> None:
    process = proc.process
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@contextmanager
def workers(
    database_url: str,
    count: int,
    concurrency: int,
    log_dir: Path,
    *,
    burst: bool = True,
    job_types: Sequence[str] = ("noop",),
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[list[Proc]]:
    """``count`` real ``syncbridge worker`` processes; stopped (SIGTERM) on the way out."""
    command = [sys.executable, "-m", "syncbridge", "worker", "--concurrency", str(concurrency)]
    if burst:
        command.append("--burst")
    for name in job_types:
        command += ["--job-type", name]
    command += args
    environment = child_env(database_url, **(env or {}))
    with ExitStack() as stack:
        procs: list[Proc] = []
        for n in range(count):
            proc = start(
                [*command, "--worker-id", f"bench-{n}"], environment, log_dir / f"w{n}.log"
            )
            stack.callback(stop, proc)
            procs.append(proc)
        yield procs


def wait_exit(procs: Sequence[Proc], timeout: float) -> None:
    """Wait for every process to exit 0 (burst workers)."""
    deadline = time.monotonic() + timeout
    while any(p.process.poll() is None for p in procs):
        if time.monotonic() > deadline:
            raise BenchError(f"workers still running after {timeout:.0f}s")
        time.sleep(0.02)
    for proc in procs:
        if proc.process.returncode != 0:
            raise BenchError(
                f"worker exited with {proc.process.returncode}; log tail:\n{proc.log_tail()}"
            )


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)


def read_rss_kb(pid: int) -> int | None:
    """VmRSS of a process in kB, from ``/proc`` (Linux); None once it has exited."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Mocks:
    crm_url: str
    billing_url: str
    proc: Proc


@contextmanager
def mocks(log_dir: Path, latency_ms: int, fault_rate: float) -> Iterator[Mocks]:
    """The mock CRM and Billing servers (one process) on free ports."""
    crm, billing = free_port(), free_port()
    command = [sys.executable, "-m", "mocks", "--crm-port", str(crm), "--billing-port"]
    command += [str(billing), "--latency-ms", str(latency_ms), "--fault-rate", str(fault_rate)]
    proc = start(command, dict(os.environ), log_dir / "mocks.log")
    try:
        try:
            wait_until(lambda: port_open(crm) and port_open(billing), 30, "the mock servers")
        except BenchError:
            raise BenchError(f"mock servers did not start; log tail:\n{proc.log_tail()}") from None
        yield Mocks(f"http://127.0.0.1:{crm}", f"http://127.0.0.1:{billing}", proc)
    finally:
        stop(proc, grace=10)


class RssSampler:
    """Samples the RSS of running processes on a thread (for workers that do not exit)."""

    def __init__(self, procs: Sequence[Proc], every: float = 0.05) -> None:
        self._procs = procs
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            for proc in self._procs:
                rss = read_rss_kb(proc.process.pid)
                if rss is not None:
                    proc.rss_kb.append(rss)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def read_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, from ``/proc/<pid>/stat``; None once gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def read_machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from ``/proc/stat``."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


class CpuSampler:
    """Where the CPU went while some processes ran: each one's CPU seconds (sampled on a
    thread, so processes that exit on their own are still counted) and the machine's."""

    def __init__(self, named: dict[str, Sequence[Proc]], every: float = 0.05) -> None:
        self._named = named
        self._every = every
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu", daemon=True)
        self._machine_start = (0.0, 0.0)
        self.report: dict[str, float] = {}

    def __enter__(self) -> CpuSampler:
        self._machine_start = read_machine_busy()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        busy, total = read_machine_busy()
        wall = (total - self._machine_start[1]) / (os.cpu_count() or 1)
        self.report = {"cpu_wall_seconds": round(wall, 3)}
        self.report["cpu_machine_busy_share"] = round(
            (busy - self._machine_start[0]) / max(total - self._machine_start[1], 1e-9), 3
        )
        for name, procs in self._named.items():
            used = sum(
                self._last.get(p.process.pid, 0.0) - self._first.get(p.process.pid, 0.0)
                for p in procs
            )
            self.report[f"cpu_{name}_cores"] = round(used / wall, 3) if wall > 0 else 0.0

    def _sample(self) -> None:
        for procs in self._named.values():
            for proc in procs:
                seconds = read_cpu_seconds(proc.process.pid)
                if seconds is not None:
                    self._first.setdefault(proc.process.pid, seconds)
                    self._last[proc.process.pid] = seconds

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._sample()
