"""What every part of the store shares: the engine, the clock, and how "now" is written in SQL.

On PostgreSQL with the system clock, "now" is the database's ``now()``: every worker host then
agrees on lease time whatever its own clock says. Anywhere else (SQLite, or an injected test
clock) "now" is a bound parameter from the clock, so tests control time exactly.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Interval, bindparam, func
from sqlalchemy.sql.elements import ColumnElement

from syncbridge.clock import Clock, SystemClock
from syncbridge.db.engine import READ_ONLY_OPTION
from syncbridge.db.types import UTCDateTime

NOW = "sb_now"


class StoreBase:
    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self.dialect = engine.dialect.name
        self.uses_database_clock = self.dialect == "postgresql" and isinstance(
            self.clock, SystemClock
        )

    def reading(self) -> Connection:
        """A connection for reads only: on SQLite its transaction is deferred, so readers (the
        CLI, the API, checks, metrics scrapes) never queue behind the workers' write lock."""
        return self.engine.connect().execution_options(**{READ_ONLY_OPTION: True})

    # Hot-path statements are built once and reused (building one costs far more than running
    # it). They cannot carry a clock value, so time enters them as named parameters.

    def now_param(self) -> ColumnElement[Any]:
        """The current time in a reusable statement; :meth:`time_params` supplies it."""
        if self.uses_database_clock:
            return func.now(type_=UTCDateTime())
        return bindparam(NOW, type_=UTCDateTime())

    def later_param(self, name: str) -> ColumnElement[Any]:
        """The current time plus an offset named ``name``, in a reusable statement."""
        if self.uses_database_clock:
            return func.now(type_=UTCDateTime()) + bindparam(name, type_=Interval())
        return bindparam(name, type_=UTCDateTime())

    def time_params(self, **offsets_seconds: float) -> dict[str, Any]:
        """Values for :meth:`now_param` and each :meth:`later_param` offset."""
        if self.uses_database_clock:
            return {name: timedelta(seconds=s) for name, s in offsets_seconds.items()}
        now = self.clock.now()
        return {NOW: now} | {
            name: now + timedelta(seconds=s) for name, s in offsets_seconds.items()
        }

    def now_sql(self, offset_seconds: float = 0.0) -> ColumnElement[Any]:
        """SQL for "now" (plus an offset), from the one clock this store uses."""
        if self.uses_database_clock:
            now: ColumnElement[Any] = func.now(type_=UTCDateTime())
            if offset_seconds:
                return now + bindparam(None, timedelta(seconds=offset_seconds))
            return now
        return bindparam(
            None, self.clock.now() + timedelta(seconds=offset_seconds), type_=UTCDateTime()
        )


# What ``json.dumps(value, sort_keys=True, separators=(",", ":"))`` gives, byte for byte (stored
# hashes depend on it), without building an encoder per call as ``dumps`` does for these options.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def params_hash(job_type: str, entity_id: str, payload: Any) -> str:
    """What an idempotency key promises: the same type, entity and payload."""
    canonical = _CANONICAL.encode([job_type, entity_id, payload])
    return hashlib.sha256(canonical.encode()).hexdigest()
