"""Start the mocks as a real subprocess for a test, and always stop it.

with start_mock_servers(fault_rate=0.2, seed=7) as mocks:
    httpx.get(f"{mocks.crm_url}/customers/c_1001")
    assert mocks.stats("billing")["effects"] == {}
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import httpx

Which = Literal["crm", "billing"]

# The options `python -m mocks` takes besides the ports, which this helper chooses.
OPTIONS = frozenset(
    {
        "fault_rate",
        "max_faults_per_entity",
        "latency_ms",
        "seed",
        "slow_seconds",
        "retry_after_seconds",
        "lost_response_rate",
        "idempotency_ttl_seconds",
    }
)
_ROOT = Path(__file__).resolve().parent.parent  # holds the `mocks` package
_START_ATTEMPTS = 3  # a free port can be taken by someone else before the child binds it


@dataclass
class MockServers:
    crm_url: str
    billing_url: str
    process: subprocess.Popen[bytes]
    client: httpx.Client
    _output: IO[bytes]

    def url(self, which: Which) -> str:
        return self.crm_url if which == "crm" else self.billing_url

    def stats(self, which: Which) -> dict[str, Any]:
        return self._call("GET", which, "/_stats")

    def faults(self, which: Which) -> dict[str, Any]:
        return self._call("GET", which, "/_faults")

    def set_faults(self, which: Which, **changes: Any) -> dict[str, Any]:
        """POST /_faults, e.g. set_faults("billing", entities={"c_down": "ok"})."""
        return self._call("POST", which, "/_faults", json=changes)

    def reset(self, which: Which | None = None) -> None:
        for name in ("crm", "billing") if which is None else (which,):
            self._call("POST", name, "/_reset")

    def output(self) -> str:
        """Everything the process printed so far (stdout and its JSON log on stderr)."""
        self._output.flush()
        self._output.seek(0)
        return self._output.read().decode(errors="replace")

    def _call(self, method: str, which: Which, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.client.request(method, self.url(which) + path, **kwargs)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def _free_ports(count: int) -> list[int]:
    # Hold every socket until all are bound, so the ports differ from each other.
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _command(crm_port: int, billing_port: int, options: dict[str, Any]) -> list[str]:
    unknown = set(options) - OPTIONS
    if unknown:
        raise TypeError(f"unknown mock option(s): {sorted(unknown)}")
    args = [sys.executable, "-m", "mocks", "--crm-port", str(crm_port)]
    args += ["--billing-port", str(billing_port)]
    for name, value in sorted(options.items()):
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()  # reap it in every case


def _wait_ready(servers: MockServers, deadline: float) -> bool:
    """True once both servers answer /_stats; False if the process died first."""
    while time.monotonic() < deadline:
        if servers.process.poll() is not None:
            return False
        try:
            servers.stats("crm")
            servers.stats("billing")
            return True
        except httpx.HTTPError:
            time.sleep(0.05)  # the child is still binding; polling is the only signal we have
    raise TimeoutError(f"mock servers not ready in time; output:\n{servers.output()}")


@contextlib.contextmanager
def start_mock_servers(
    *, startup_timeout: float = 15.0, stop_timeout: float = 10.0, **options: Any
) -> Iterator[MockServers]:
    """Run `python -m mocks` on two free ports for the duration of the block.

    `options` are those of `python -m mocks` (fault_rate, seed, ...). The process gets SIGTERM
    on exit (SIGKILL after `stop_timeout`) and is always reaped, even when the block raises;
    `servers.process.returncode` is then 0 for a clean stop.
    """
    # Import this checkout's `mocks`, whatever the caller's working directory.
    path = [str(_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    deadline = time.monotonic() + startup_timeout
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(httpx.Client(timeout=5.0))
        for attempt in range(1, _START_ATTEMPTS + 1):
            crm_port, billing_port = _free_ports(2)
            output = stack.enter_context(tempfile.TemporaryFile())
            process = subprocess.Popen(
                _command(crm_port, billing_port, options),
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
            )
            stack.callback(_stop, process, stop_timeout)
            servers = MockServers(
                crm_url=f"http://127.0.0.1:{crm_port}",
                billing_url=f"http://127.0.0.1:{billing_port}",
                process=process,
                client=client,
                _output=output,
            )
            if _wait_ready(servers, deadline):
                break
            if attempt == _START_ATTEMPTS:
                raise RuntimeError(f"mock servers exited early; output:\n{servers.output()}")
        yield servers
