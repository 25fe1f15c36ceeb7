"""`syncbridge demo` (what `make demo` runs): every outcome, no duplicate, no process left."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import syncbridge_env, wait_for

pytestmark = pytest.mark.processes


def _mock_processes() -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"mocks" in cmdline and b"--crm-port" in cmdline:
                found.add(int(entry.name))
    return found


def _demo(tmp_path: Path) -> subprocess.Popen[str]:
    env = syncbridge_env(f"sqlite:///{tmp_path / 'unused.db'}")
    return subprocess.Popen(
        [sys.executable, "-m", "syncbridge", "demo", "--db-file", str(tmp_path / "demo.db")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_demo_shows_every_outcome_and_no_duplicate(tmp_path: Path) -> None:
    before = _mock_processes()
    demo = _demo(tmp_path)
    stdout, stderr = demo.communicate(timeout=90)
    assert demo.returncode == 0, stderr[-3000:]
    assert "every Billing effect applied exactly once" in stderr
    # Every effect is filed in the ledger (its lineage succeeded in the end: FM_033).
    applied, filed = map(int, re.findall(r"\((\d+) keys; (\d+) in the ledger\)", stderr)[0])
    assert applied == filed > 0
    assert "every invariant holds" in stderr
    for entity, state in [
        ("c_flaky", "succeeded"),
        ("c_1002", "succeeded"),
        ("c_missing", "failed"),
        ("c_invalid", "failed"),
        ("c_down", "dead"),
        ("i_2001", "succeeded"),
    ]:
        assert any(entity in line and state in line for line in stdout.splitlines()), entity
    assert "replayed dead job" in stderr
    assert _mock_processes() <= before


def test_ctrl_c_leaves_no_process_behind(tmp_path: Path) -> None:
    before = _mock_processes()
    demo = _demo(tmp_path)
    assert demo.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = demo.stderr.readline()
        if "enqueued" in line or not line:
            break
    os.kill(demo.pid, signal.SIGINT)
    demo.communicate(timeout=60)
    assert demo.returncode != 0
    wait_for(lambda: _mock_processes() <= before, 10, "the mock servers to be gone")
