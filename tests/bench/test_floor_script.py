"""``docs/perf/enqueue_floor.sh`` (where a single enqueue's time goes) as a smoke run: tiny
numbers, no timing asserted, only that every layer ran and reported a rate, so the script the
performance notes cite does not rot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL, require_postgres

ROOT = Path(__file__).resolve().parents[2]


def test_enqueue_floor_script_times_every_layer() -> None:
    require_postgres()
    if shutil.which("pgbench") is None:
        pytest.skip("pgbench (PostgreSQL's client tools) is not installed")
    env = os.environ | {"BENCH_POSTGRES_URL": POSTGRES_URL, "PGBENCH_SECONDS": "1"}
    done = subprocess.run(
        ["bash", str(ROOT / "docs/perf/enqueue_floor.sh"), "30", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rate = r"[0-9][0-9,]*/s"
    for layer in ("pgbench 1 client", "libpq", "psycopg", "engine"):
        assert re.search(rf"^round 1: {layer} {rate}", done.stdout, re.M), done.stdout
    assert re.search(
        rf"^4 clients: pgbench with the NOTIFY {rate}, without {rate}$", done.stdout, re.M
    )
