"""What every command needs, built lazily: settings, store, plugin registry, services."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from syncbridge.config import Settings, load_settings
from syncbridge.db.engine import check_ready, make_engine
from syncbridge.db.queries import Store
from syncbridge.plugins import Registry, load_registry
from syncbridge.services import Services


@dataclass
class App:
    config_file: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_file, **self.flags)

    @cached_property
    def raw_store(self) -> Store:
        """A store without the readiness check (``migrate`` uses it)."""
        return Store(make_engine(self.settings.database_url))

    @cached_property
    def store(self) -> Store:
        check_ready(self.raw_store.engine)
        return self.raw_store

    @cached_property
    def worker_store(self) -> Store:
        """The worker's store. No ping before each checkout: that is one more round trip per
        transaction on the hot path, and the worker already survives a dropped connection (the
        operation fails once, the pool reconnects, the worker retries; fencing keeps it safe)."""
        store = Store(make_engine(self.settings.database_url, pool_pre_ping=False))
        check_ready(store.engine)
        return store

    @cached_property
    def registry(self) -> Registry:
        return load_registry(self.settings.plugin_filter)

    @cached_property
    def services(self) -> Services:
        return Services(self.store, self.registry, self.settings)
