"""Runs the chosen scenarios in order and collects their results."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from syncbridge.bench import peers as peer_runs
from syncbridge.bench.options import SCENARIOS, Options
from syncbridge.bench.result import BenchError, BenchUsageError, Result, fastest, taking_turns
from syncbridge.bench.sandbox import backend_of
from syncbridge.bench.scenarios import backlog, enqueue, latency, noop, noop_once
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
    if opts.repeat > 1 and not {"noop", "backlog"} & set(scenarios):
        raise BenchUsageError("--repeat applies to the noop and backlog scenarios: name one")
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
        if scenario == "noop" and with_peers:
            steps.append(partial(_noop_beside_peers, opts, python))
            continue
        steps.append(partial(RUNNERS[scenario], opts))
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


def _noop_beside_peers(opts: Options, python: Path) -> list[Result]:
    """syncbridge's ``noop`` and the peers' on the same server. The repeated runs take turns
    (syncbridge, PgQueuer at batch 10, PgQueuer at batch 100, then again), so that a slow
    spell of a shared host falls on every side alike; each keeps its fastest run. Procrastinate
    runs once: at two minutes a run and a hundredth of the others' rate, repeating it would
    only lengthen the benchmark."""
    turns: dict[tuple[str, int | None], Callable[[], Result]] = {
        ("syncbridge", None): partial(noop_once, opts, opts.concurrency)
    }
    for peer, batch in peer_runs.PEER_RUNS:
        if peer != "procrastinate":
            turns[(peer, batch)] = partial(peer_runs.run_noop, opts, python, peer, batch)
    runs = taking_turns(opts.repeat, turns)
    results = [fastest(runs[("syncbridge", None)])]
    for peer, batch in peer_runs.PEER_RUNS:
        if (peer, batch) in runs:
            results.append(fastest(runs[(peer, batch)]))
        else:
            results.append(peer_runs.run_noop(opts, python, peer, batch))
    return results
