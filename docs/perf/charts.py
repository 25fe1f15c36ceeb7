"""Charts for docs/performance.md from the measured results (a doc tool: needs matplotlib,
which syncbridge itself never imports).

    .venv/bin/pip install matplotlib
    .venv/bin/python docs/perf/charts.py docs/perf/results.json docs/perf

``results.json`` is ``{"bench": [...syncbridge bench --json rows, plus "run" and "source"...],
"bare": [...scripts/peers/bare_loop.py rows...]}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def noop_chart(rows: list[dict[str, Any]], target: Path) -> None:
    """Drain rate of the noop scenario, per system, one group per (backend, processes)."""
    noop = [
        r
        for r in rows
        if r["scenario"] == "noop"
        and r.get("concurrency") == 100
        and r.get("run") == "B"
        and r["source"].startswith(("pg_noop", "sq_noop"))
    ]
    labels = []
    rates = []
    colours = []
    palette = {"syncbridge": "#2b6cb0", "procrastinate": "#c05621", "pgqueuer": "#2f855a"}
    for row in sorted(noop, key=lambda r: (r["backend"], r["processes"], r["system"])):
        variant = f" {row['variant']}" if row.get("variant") else ""
        labels.append(f"{row['system']}{variant}\n{row['backend']}, {row['processes']} proc")
        rates.append(row["drain_jobs_per_s"])
        colours.append(palette.get(row["system"], "grey"))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    bars = ax.bar(range(len(rates)), rates, color=colours)
    ax.bar_label(bars, labels=[f"{r:,.0f}" for r in rates], fontsize=8)
    ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("jobs/s (first start to last success)")
    ax.set_title("noop: 20,000 jobs, concurrency 100, this 2-core machine")
    fig.tight_layout()
    fig.savefig(target / "noop_throughput.png", dpi=110)
    plt.close(fig)


def cost_chart(bare: list[dict[str, Any]], rows: list[dict[str, Any]], target: Path) -> None:
    """The price of each guarantee: bare loop levels, then the engine itself."""
    one = [r for r in bare if r["processes"] == 1]
    engine = [
        r
        for r in rows
        if r["scenario"] == "noop"
        and r["system"] == "syncbridge"
        and r["backend"] == "postgresql"
        and r["processes"] == 1
        and r.get("concurrency") == 100
        and r["source"] == "pg_noop_p1b"
    ]
    labels = [r["level"] for r in one] + ["syncbridge worker\n(+ SQLAlchemy, logs)"]
    rates = [r["jobs_per_s"] for r in one] + [r["drain_jobs_per_s"] for r in engine[:1]]
    fig, ax = plt.subplots(figsize=(8, 4))
    bars = ax.bar(range(len(rates)), rates, color="#2b6cb0")
    ax.bar_label(bars, labels=[f"{r:,.0f}" for r in rates], fontsize=8)
    ax.set_xticks(range(len(labels[: len(rates)])), labels[: len(rates)], fontsize=8)
    ax.set_ylabel("jobs/s, 1 process, PostgreSQL")
    ax.set_title("What each guarantee costs (batch 100, no-op jobs)")
    fig.tight_layout()
    fig.savefig(target / "guarantee_cost.png", dpi=110)
    plt.close(fig)


def latency_chart(rows: list[dict[str, Any]], target: Path) -> None:
    latency = [r for r in rows if r["scenario"] == "latency" and r.get("run") == "B"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.35
    for n, row in enumerate(latency):
        values = [row["p50_ms"], row["p95_ms"], row["p99_ms"]]
        xs = [i + n * width for i in range(3)]
        bars = ax.bar(xs, values, width, label=row["backend"])
        ax.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=8)
    ax.set_xticks([i + width / 2 for i in range(3)], ["p50", "p95", "p99"])
    ax.set_ylabel("enqueue to start, ms")
    ax.set_title("latency at 200 jobs/s, one worker")
    ax.legend()
    fig.tight_layout()
    fig.savefig(target / "latency.png", dpi=110)
    plt.close(fig)


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    data = json.loads(source.read_text())
    noop_chart(data["bench"], target)
    cost_chart(data["bare"], data["bench"], target)
    latency_chart(data["bench"], target)


if __name__ == "__main__":
    main()
