"""``syncbridge stats [--json]``: the summary behind ``GET /api/metrics``, from the database."""

from __future__ import annotations

from typing import Any

import click

from syncbridge.cli.app import App
from syncbridge.cli.main import cli
from syncbridge.cli.output import emit_json, table
from syncbridge.metrics.summary import summary
from syncbridge.states import JobState

pass_app = click.make_pass_decorator(App)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def stats(app: App, as_json: bool) -> None:
    """Totals, success rate, retries, attempt duration, queue depth and DLQ size."""
    doc = summary(app.store, stale_after_seconds=3 * app.settings.job_lease_seconds)
    if as_json:
        emit_json(doc)
        return
    rows: list[tuple[str, Any]] = [
        ("as of", doc["generated_at"]),
        ("jobs", doc["total"]),
        ("finished", doc["finished"]),
        ("success rate", _percent(doc["success_rate"])),
        ("attempts", doc["attempts"]),
        ("retries", doc["retries"]),
        ("avg attempt duration", _ms(doc["avg_attempt_duration_ms"])),
        ("DLQ (dead)", doc["dlq_size"]),
        ("oldest runnable job waits", _ms(doc["oldest_runnable_age_ms"])),
        ("workers live / stale", f"{doc['workers_live']} / {doc['workers_stale']}"),
    ]
    table(("", "value"), rows)
    states = [str(state) for state in JobState]
    by_type = doc["by_job_type"]
    type_rows = [
        (
            name,
            *(entry["states"][state] for state in states),
            _percent(entry["success_rate"]),
            entry["retries"],
        )
        for name, entry in by_type.items()
    ]
    type_rows.append(("all", *(doc["queue_depth"][s] for s in states), "", doc["retries"]))
    table(("job type", *states, "success", "retries"), type_rows)
