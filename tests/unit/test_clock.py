"""ElapsedClock: in-memory deadlines follow elapsed time, not the host's wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncbridge import clock as clock_module
from syncbridge.api.throttle import FailedLogins
from syncbridge.clock import ElapsedClock


class _SteppedWallClock:
    """Stands in for ``datetime`` in the clock module: ``now`` is whatever the test set."""

    value = datetime(2030, 1, 1, tzinfo=UTC)

    @classmethod
    def now(cls, tz: object = None) -> datetime:
        return cls.value


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """The host's two clocks, under the test's control."""
    state = {"monotonic": 1000.0}
    monkeypatch.setattr(clock_module, "datetime", _SteppedWallClock)
    monkeypatch.setattr(clock_module.time, "monotonic", lambda: state["monotonic"])
    return state


def test_follows_elapsed_time_whatever_the_wall_clock_does(host: dict[str, float]) -> None:
    elapsed = ElapsedClock()
    start = elapsed.now()
    assert start == _SteppedWallClock.value
    _SteppedWallClock.value -= timedelta(hours=3)  # the host's clock is set back
    host["monotonic"] += 5
    assert elapsed.now() == start + timedelta(seconds=5)
    _SteppedWallClock.value += timedelta(days=1)  # and then far forward
    host["monotonic"] += 1
    assert elapsed.now() == start + timedelta(seconds=6)


def test_a_clock_set_back_does_not_lengthen_a_lock_out(host: dict[str, float]) -> None:
    logins = FailedLogins(limit=2, window=timedelta(seconds=60))  # the default clock
    for _ in range(2):
        assert not logins.check("10.0.0.1", lambda: False).ok
    assert logins.check("10.0.0.1", lambda: True).throttled
    _SteppedWallClock.value -= timedelta(hours=1)
    host["monotonic"] += 61
    assert logins.check("10.0.0.1", lambda: True).ok
