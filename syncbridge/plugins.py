"""Plugin discovery through the ``syncbridge`` entry-point group (loaded when asked, never at
import time) and the registry of job types they provide."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points

import pluggy

from syncbridge import hookspecs
from syncbridge.errors import InvalidInput
from syncbridge.jobtypes import JobType


class PluginError(Exception):
    pass


@dataclass
class Registry:
    job_types: dict[str, JobType] = field(default_factory=dict)
    plugins: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> JobType:
        try:
            return self.job_types[name]
        except KeyError:
            known = ", ".join(sorted(self.job_types)) or "none"
            raise InvalidInput(f"unknown job type {name!r} (installed: {known})") from None


def load_registry(
    only: list[str] | None = None, extra_plugins: list[tuple[str, object]] | None = None
) -> Registry:
    """Load installed plugins (filtered by ``only``, i.e. ``SYNCBRIDGE_PLUGINS``) plus any given
    directly (tests), and collect their job types."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    available = {ep.name: ep for ep in entry_points(group=hookspecs.PROJECT_NAME)}
    if only is not None and not only:
        raise PluginError("SYNCBRIDGE_PLUGINS names no plugin; unset it to load all")
    if only is not None:
        missing = sorted(set(only) - set(available))
        if missing:
            raise PluginError(
                f"SYNCBRIDGE_PLUGINS names plugins that are not installed: {', '.join(missing)} "
                f"(installed: {', '.join(sorted(available)) or 'none'})"
            )
    names = sorted(available) if only is None else only
    for name in names:
        manager.register(available[name].load(), name=name)
    for name, plugin in extra_plugins or []:
        manager.register(plugin, name=name)

    registry = Registry()
    for impl in manager.hook.register_job_types.get_hookimpls():
        found: list[JobType] = []
        impl.function(register=found.append)
        for job_type in found:
            if job_type.name in registry.job_types:
                other = registry.job_types[job_type.name].plugin
                raise PluginError(
                    f"job type {job_type.name!r} is registered by both {other!r} and "
                    f"{impl.plugin_name!r}"
                )
            registry.job_types[job_type.name] = replace(job_type, plugin=impl.plugin_name)
        registry.plugins.setdefault(impl.plugin_name, []).extend(j.name for j in found)
    return registry
