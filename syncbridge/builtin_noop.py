"""The built-in ``noop`` job type, registered through the entry-point group like any plugin.

Its payload can steer it, which tests, drills and benchmarks use: ``{"sleep": seconds}`` sleeps
(waking early on a stop request; only on the first ``sleep_attempts``
attempts if given), ``{"fail": "retryable"|"terminal"}`` raises, ``{"crash": true}``
kills the worker process (a poison job).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from syncbridge.errors import UpstreamUnavailable, ValidationError
from syncbridge.hookspecs import hookimpl
from syncbridge.jobtypes import JobContext, JobType, Success


def run_noop(ctx: JobContext) -> Success:
    payload = ctx.payload
    if payload.get("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    sleep = float(payload.get("sleep", 0) or 0)
    if sleep > 0 and ctx.attempt <= int(payload.get("sleep_attempts", 1_000_000)):
        ctx.wait_for_stop(sleep)
    failure = payload.get("fail")
    fail_attempts = int(payload.get("fail_attempts", 1_000_000))
    if failure == "terminal":
        raise ValidationError("noop asked to fail terminally", field="fail")
    if failure == "retryable" and ctx.attempt <= fail_attempts:
        raise UpstreamUnavailable(f"noop asked to fail (attempt {ctx.attempt})")
    return Success()


@hookimpl
def register_job_types(register: Callable[[JobType], None]) -> None:
    register(JobType(name="noop", handler=run_noop, description="does nothing; for tests"))
