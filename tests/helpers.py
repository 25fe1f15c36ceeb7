"""Small builders shared by tests."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from syncbridge.config import Settings
from syncbridge.hookspecs import hookimpl
from syncbridge.jobtypes import JobType
from syncbridge.plugins import Registry, load_registry

FAST = {
    "job_lease_seconds": 2.0,
    "job_backoff_seconds_base": 0.0,
    "poll_interval_seconds": 0.01,
    "rescue_interval_seconds": 0.1,
    "shutdown_grace_seconds": 2.0,
    "job_timeout_seconds": 30.0,
    "reconcile_settle_seconds": 0.0,  # the settle time has tests of its own
}


def fast_settings(**overrides: Any) -> Settings:
    return Settings(**(FAST | overrides))  # type: ignore[arg-type]


class InlinePlugin:
    """A plugin object made in a test, registered the same way as an installed one."""

    def __init__(self, *job_types: JobType) -> None:
        self.job_types = job_types

    @hookimpl
    def register_job_types(self, register: Callable[[JobType], None]) -> None:
        for job_type in self.job_types:
            register(job_type)


def registry_with(*job_types: JobType) -> Registry:
    return load_registry(only=["noop"], extra_plugins=[("inline", InlinePlugin(*job_types))])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
