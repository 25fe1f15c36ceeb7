"""The one clock. ``datetime.now`` appears in this module and nowhere else.

Every stored time is UTC-aware. Tests inject :class:`FakeClock` and advance it instead of
sleeping. On PostgreSQL the store reads lease time from the database itself when it is given the
:class:`SystemClock`, so hosts with skewed clocks agree (see ``db/store.py``).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, UTC-aware."""


class SystemClock:
    """Wall-clock time. The only production clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ElapsedClock:
    """Wall-clock time at creation plus the monotonic time elapsed since: never steps back or
    jumps when the host's clock is set. For in-memory deadlines (login throttling, UI sessions),
    where a clock step must not lengthen a lock-out or end a session early; never for stored
    times, which must agree with other processes and hosts."""

    def __init__(self) -> None:
        self._origin = datetime.now(UTC)
        self._origin_monotonic = time.monotonic()

    def now(self) -> datetime:
        return self._origin + timedelta(seconds=time.monotonic() - self._origin_monotonic)


class FakeClock:
    """A clock that moves only when told to; thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


def utc(value: datetime) -> datetime:
    """Return ``value`` as UTC-aware; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
