"""``bench backlog --repeat N``: the two backlog sizes take turns and each size's median run is
reported, so a slow spell of the host lands on both sides of the ratio."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncbridge.bench import scenarios
from syncbridge.bench.options import Options
from syncbridge.bench.result import Result, median_run


def run_at(rate: float) -> Result:
    return Result("backlog", "sqlite", 100, 1.0, extra={"drain_jobs_per_s": rate})


@pytest.mark.parametrize(
    ("rates", "median"),
    [([3.0], 3.0), ([5.0, 1.0, 3.0], 3.0), ([4.0, 1.0, 9.0, 2.0], 2.0), ([7.0, 7.0], 7.0)],
)
def test_median_run_is_a_real_run_and_records_every_rate(rates: list[float], median: float) -> None:
    runs = [run_at(rate) for rate in rates]
    picked = median_run(runs)
    assert picked in runs and picked.extra["drain_jobs_per_s"] == median
    if len(rates) > 1:
        assert picked.extra["runs_drain_jobs_per_s"] == rates  # in run order
    else:
        assert "runs_drain_jobs_per_s" not in picked.extra


def test_backlog_sizes_take_turns_and_each_keeps_its_median(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[int] = []
    # The large backlog's second run hits a slow spell: a best-of would hide it, the median
    # of three does not let it decide either.
    rates = {1_000: iter([10.0, 12.0, 11.0]), 50_000: iter([9.0, 2.0, 9.5])}

    def once(opts: Options, size: int) -> Result:
        order.append(size)
        result = run_at(next(rates[size]))
        result.variant = f"{size} pending"
        return result

    monkeypatch.setattr(scenarios, "_backlog_once", once)
    opts = Options("sqlite:///unused", tmp_path, backlog=50_000, repeat=3, progress=lambda _: None)
    small, large = scenarios.backlog(opts)
    assert order == [1_000, 50_000] * 3
    assert (small.variant, small.extra["drain_jobs_per_s"]) == ("1000 pending", 11.0)
    assert (large.variant, large.extra["drain_jobs_per_s"]) == ("50000 pending", 9.0)
    assert large.extra["runs_drain_jobs_per_s"] == [9.0, 2.0, 9.5]
