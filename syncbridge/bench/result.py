"""What a scenario reports: one :class:`Result` per measured run."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from syncbridge.errors import Refused

K = TypeVar("K", bound=Hashable)


class BenchError(Refused):
    """A benchmark could not run or did not finish correctly; the message says why (exit 1)."""


class BenchUsageError(BenchError):
    """Options that the chosen scenarios would ignore (the CLI's usage error, exit 2)."""


@dataclass
class Result:
    scenario: str
    backend: str
    jobs: int
    seconds: float
    system: str = "syncbridge"
    variant: str = ""
    processes: int | None = None
    concurrency: int | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    succeeded: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        data["seconds"] = round(self.seconds, 4)
        data["jobs_per_s"] = round(self.jobs_per_s, 1)
        ordered = {key: data.pop(key) for key in ("scenario", "backend", "jobs", "seconds")}
        ordered["jobs_per_s"] = data.pop("jobs_per_s")
        merged: dict[str, Any] = ordered | data | extra
        return merged


def fastest(runs: list[Result]) -> Result:
    """The run with the highest drain rate, carrying every run's drain rate in run order: a
    shared 2-core host slows single runs (and PgQueuer's two processes land in a slow mode in
    some runs), so with several runs the best one measures what the system can do."""
    best = max(runs, key=_drain_rate)
    if len(runs) > 1:
        _record_drains(best, runs)
        if all("steady_jobs_per_s" in run.extra for run in runs):
            steady = [run.extra["steady_jobs_per_s"] for run in runs]
            best.extra["runs_steady_jobs_per_s"] = steady
            best.extra["best_steady_jobs_per_s"] = max(steady)
    return best


def median_run(runs: list[Result]) -> Result:
    """The run with the median drain rate (the lower of the two middle ones for an even count),
    carrying every run's drain rate in run order. For a ratio between two settings (the backlog
    target), the median of runs that took turns is the fair pick: a best-of favours whichever
    setting happened to get the host's quiet spell."""
    middle = sorted(runs, key=_drain_rate)[(len(runs) - 1) // 2]
    if len(runs) > 1:
        _record_drains(middle, runs)
    return middle


def _drain_rate(run: Result) -> float:
    return float(run.extra.get("drain_jobs_per_s") or 0.0)


def _record_drains(picked: Result, runs: list[Result]) -> None:
    picked.extra["runs_drain_jobs_per_s"] = [run.extra.get("drain_jobs_per_s") for run in runs]


def taking_turns(times: int, runs: Mapping[K, Callable[[], Result]]) -> dict[K, list[Result]]:
    """Each of ``runs`` ``times`` times, taking turns (a, b, c, a, b, c, ...) rather than one
    after the other, so that a slow spell of a shared host falls on every side alike; each
    key's results in run order."""
    results: dict[K, list[Result]] = {key: [] for key in runs}
    for _ in range(times):
        for key, run in runs.items():
            results[key].append(run())
    return results


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
