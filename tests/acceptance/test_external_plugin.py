"""A plugin author's path: a third-party distribution built in a temporary directory, with its
own pyproject.toml and entry point, installed and run by a worker with no change to syncbridge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.processes import run_cli

pytestmark = pytest.mark.processes

PLUGIN = """
from syncbridge import JobContext, JobType, Success, ValidationError
from syncbridge.hookspecs import hookimpl


def shout(ctx: JobContext) -> Success:
    if not ctx.entity_id.islower():
        raise ValidationError("entity id must be lower case", field="entity_id")
    ctx.log.info("shouted", text=ctx.entity_id.upper())
    return Success()


@hookimpl
def register_job_types(register):
    register(JobType(name="shout", handler=shout, description="a third party's job type"))
"""

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "acme-shout"
version = "1.0"
dependencies = []

[project.entry-points.syncbridge]
acme-shout = "acme_shout"
"""


def test_third_party_plugin_runs_through_a_worker(tmp_path: Path) -> None:
    source = tmp_path / "acme-shout"
    (source / "acme_shout").mkdir(parents=True)
    (source / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (source / "acme_shout" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    url = f"sqlite:///{tmp_path / 'plugin.db'}"
    path = os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])
    assert run_cli(url, "migrate").returncode == 0
    listed = run_cli(url, "plugins", "list", "--json", PYTHONPATH=path)
    plugins = {item["job_type"]: item["plugin"] for item in json.loads(listed.stdout)["items"]}
    assert plugins["shout"] == "acme-shout"
    assert run_cli(url, "enqueue", "shout", "hello", PYTHONPATH=path).returncode == 0
    assert run_cli(url, "enqueue", "shout", "Hello", PYTHONPATH=path).returncode == 0
    worker = run_cli(url, "worker", "--burst", PYTHONPATH=path)
    assert worker.returncode == 0, worker.stderr[-2000:]
    lines = [json.loads(line) for line in worker.stderr.splitlines() if line.startswith("{")]
    assert any(line.get("text") == "HELLO" for line in lines), worker.stderr[-2000:]
    jobs = json.loads(run_cli(url, "jobs", "list", "--json", PYTHONPATH=path).stdout)["items"]
    assert {j["entity_id"]: j["state"] for j in jobs} == {"hello": "succeeded", "Hello": "failed"}
    # SYNCBRIDGE_PLUGINS filters: without the plugin its job type is unknown (exit 1).
    filtered = run_cli(url, "enqueue", "shout", "again", PYTHONPATH=path, SYNCBRIDGE_PLUGINS="noop")
    assert filtered.returncode == 1 and "unknown job type 'shout'" in filtered.stderr
