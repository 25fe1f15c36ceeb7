"""Runs the chosen scenarios in order and collects their results."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial

from syncbridge.bench import peers as peer_runs
from syncbridge.bench.options import SCENARIOS, Options
from syncbridge.bench.result import BenchError, BenchUsageError, Result
from syncbridge.bench.sandbox import backend_of
from syncbridge.bench.scenarios import backlog, enqueue, latency, noop
from syncbridge.bench.sync import require_job_type, sync

RUNNERS: dict[str, Callable[[Options], list[Result]]] = {
    "noop": noop,
    "latency": latency,
    "enqueue": enqueue,
    "backlog": backlog,
    "sync": sync,
}


def plan(requested: Sequence[str], progress: Callable[[str], None]) -> list[str]:
    """The scenarios to run: those named, else all (``sync`` only when its job type is
    installed; a skipped ``sync`` is reported). A named ``sync`` without it is refused."""
    if requested:
        chosen = list(dict.fromkeys(requested))
        if "sync" in chosen:
            require_job_type()
        return chosen
    chosen = list(SCENARIOS)
    try:
        require_job_type()
    except BenchError as exc:
        chosen.remove("sync")
        progress(f"skipping sync: {exc}")
    return chosen


def refuse_ignored_options(opts: Options, scenarios: Sequence[str], with_peers: bool) -> None:
    """Options that ``scenarios`` would ignore are refused rather than dropped in silence."""
    if opts.repeat > 1 and opts.rss:
        raise BenchUsageError("--repeat does not apply to --rss runs (each is sampled once)")
    if opts.repeat > 1 and "noop" not in scenarios:
        raise BenchUsageError("--repeat applies to the noop scenario only: name noop")
    if with_peers and not {"noop", "enqueue"} & set(scenarios):
        raise BenchUsageError("--peers compares the noop and enqueue scenarios: name one")


def run(opts: Options, scenarios: Sequence[str], with_peers: bool = False) -> list[Result]:
    refuse_ignored_options(opts, scenarios, with_peers)
    if with_peers:
        if backend_of(opts.database_url) != "postgresql":
            raise BenchError("--peers compares PostgreSQL job queues: use a PostgreSQL URL")
        python = peer_runs.ensure_venv(opts.progress)
    steps: list[Callable[[], list[Result]]] = []
    for scenario in scenarios:
        steps.append(partial(RUNNERS[scenario], opts))
        if scenario == "noop" and with_peers:
            steps.append(partial(peer_runs.run_all, opts, python))
        if scenario == "enqueue" and with_peers:
            steps.append(partial(peer_runs.run_enqueue, opts, python))
    results: list[Result] = []
    for step in steps:
        # Other work on the machine skews every number: record how busy it was.
        load = os.getloadavg()[0]
        for result in step():
            result.extra["load_1m_before"] = round(load, 2)
            results.append(result)
    return results
