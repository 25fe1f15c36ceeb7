"""Plugin hooks. A plugin is a module (or object) exposing ``@hookimpl`` functions, published in
the ``syncbridge`` entry-point group. Built-in job types are plugins exactly like third-party ones.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from syncbridge.jobtypes import JobType

PROJECT_NAME = "syncbridge"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_job_types(register: Callable[[JobType], None]) -> None:
    """Call ``register(JobType(...))`` once for each job type the plugin provides."""
