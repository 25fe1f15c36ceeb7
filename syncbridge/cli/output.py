"""Output for people (aligned tables, via rich) and for programs (one JSON document)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from syncbridge.models import Job


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, default=str))


def emit_list(items: list[dict[str, Any]], next_cursor: Any = None) -> None:
    emit_json({"items": items, "next_cursor": next_cursor})


def shown(value: Any) -> str:
    """``value`` as text safe to print on a terminal: every character that is not printable
    (control characters such as ESC, which start terminal commands; newlines and carriage
    returns, which forge lines; bidi overrides and other invisible formatting) is written as
    its Python escape. Stored text that came from an upstream's error response may hold any
    of them."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    grid = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        # markup=False: an entity id like "[red]x" or "<img ...>" is shown as the text it is.
        grid.add_row(*(shown(value) for value in row))
    console = Console(markup=False, highlight=False)
    if not console.is_terminal:
        console.width = 160
    console.print(grid)


def short_error(job: Job) -> str:
    if not job.last_error:
        return ""
    return f"{job.last_error.get('class')}: {str(job.last_error.get('message', ''))[:60]}"


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


JOB_COLUMNS = ("id", "type", "entity", "state", "attempt", "next run (UTC)", "last error")


def job_row(job: Job) -> tuple[Any, ...]:
    return (
        job.id,
        job.job_type,
        job.entity_id,
        job.state,
        f"{job.attempt}/{job.max_retries + 1}",
        when(job.next_run_at) if job.state == "pending" else "",
        short_error(job),
    )
