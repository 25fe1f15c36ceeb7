"""Commands about jobs: enqueue, jobs list/show, dlq, replay, retry, cancel, plugins."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TextIO

import click

from syncbridge.cli.app import App
from syncbridge.cli.main import cli
from syncbridge.cli.output import (
    JOB_COLUMNS,
    emit_json,
    emit_list,
    job_row,
    short_error,
    shown,
    table,
)
from syncbridge.errors import InvalidBatchRequest, InvalidInput
from syncbridge.models import EnqueueRequest
from syncbridge.states import JobState

pass_app = click.make_pass_decorator(App)
JOB_ID = click.IntRange(1, 2**63 - 1)
json_flag = click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")


def _payload(text: str | None) -> Any:
    return {} if text is None else _json_object(text, "--payload")


def _json_object(text: str, name: str) -> dict[str, Any]:
    """``text`` read as a JSON object; refused naming ``name`` when it is not one."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{name} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput(f"{name} is nested too deeply") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object")
    return value


def _run_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--run-at is not an ISO 8601 time: {text!r}") from None


@cli.command()
@click.argument("job_type", required=False)
@click.argument("entity_id", required=False)
@click.option(
    "--from-file",
    type=click.File("r"),
    help=(
        "JSON lines of {job_type, entity_id, payload?, idempotency_key?, ...}. Every line is "
        "checked first; a bad one stores nothing."
    ),
)
@click.option("--payload", help="JSON object handed to the handler.")
@click.option("--idempotency-key", help="Enqueueing the same key twice returns the same job.")
@click.option("--correlation-id", help="Carried through logs and upstream calls.")
@click.option("--max-retries", type=click.IntRange(0, 1000))
@click.option("--run-at", help="ISO 8601 time with offset; not before then.")
@json_flag
@pass_app
def enqueue(
    app: App,
    job_type: str | None,
    entity_id: str | None,
    from_file: TextIO | None,
    payload: str | None,
    idempotency_key: str | None,
    correlation_id: str | None,
    max_retries: int | None,
    run_at: str | None,
    as_json: bool,
) -> None:
    """Enqueue a job; prints its id. An active duplicate returns the existing job."""
    if from_file is not None:
        if job_type or entity_id:
            raise click.UsageError("give JOB_TYPE ENTITY_ID or --from-file, not both")
        _enqueue_file(app, from_file, as_json)
        return
    if not job_type or entity_id is None:
        raise click.UsageError("JOB_TYPE and ENTITY_ID are required (or --from-file)")
    result = app.services.enqueue(
        job_type,
        entity_id,
        _payload(payload),
        idempotency_key=idempotency_key,
        correlation_id=correlation_id,
        max_retries=max_retries,
        run_at=_run_at(run_at),
    )
    if as_json:
        emit_json(result.job.to_dict() | {"deduplicated": result.deduplicated})
        return
    click.echo(result.job.id)
    if result.deduplicated:
        note = " (marked for a follow-up run)" if result.follow_up_marked else ""
        click.echo(f"deduplicated: job {result.job.id} is {result.job.state}{note}", err=True)


def _enqueue_file(app: App, source: TextIO, as_json: bool) -> None:
    """Check every line first (fields, their types, keys against each other and the database),
    then insert in bulk: a bad line stores nothing."""
    requests, line_numbers = [], []
    for number, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            requests.append(_bulk_request(app, line))
        except InvalidInput as exc:
            raise InvalidInput(f"line {number}: {exc}") from None
        line_numbers.append(number)
    try:
        results = app.services.enqueue_many(requests)
    except InvalidBatchRequest as exc:
        raise InvalidInput(
            f"line {line_numbers[exc.index]}: {exc.reason}; nothing was stored"
        ) from None
    if as_json:
        emit_list([r.job.to_dict() | {"deduplicated": r.deduplicated} for r in results])
        return
    new = sum(not r.deduplicated for r in results)
    click.echo(f"{len(results)} jobs: {new} new, {len(results) - new} deduplicated", err=True)


def _bulk_request(app: App, line: str) -> EnqueueRequest:
    """One line of ``--from-file``, validated as ``build_request`` validates any enqueue: the
    values go in with their JSON types, so ``"entity_id": 5`` is refused, not read as "5"."""
    item = _json_object(line, "the line")
    unknown = set(item) - BULK_FIELDS
    if unknown:
        raise InvalidInput(f"unknown field(s) {sorted(unknown)}")
    missing = [name for name in ("job_type", "entity_id") if name not in item]
    if missing:
        raise InvalidInput(f"missing field(s) {missing}")
    run_at = item.get("run_at")
    if run_at is not None and not isinstance(run_at, str):
        raise InvalidInput("run_at must be an ISO 8601 string")
    return app.services.build_request(
        item["job_type"],
        item["entity_id"],
        item.get("payload"),
        idempotency_key=item.get("idempotency_key"),
        correlation_id=item.get("correlation_id"),
        max_retries=item.get("max_retries"),
        run_at=_run_at(run_at),
    )


BULK_FIELDS = {
    "job_type",
    "entity_id",
    "payload",
    "idempotency_key",
    "correlation_id",
    "max_retries",
    "run_at",
}


@cli.group()
def jobs() -> None:
    """Inspect jobs."""


@jobs.command("list")
@click.option("--state", type=click.Choice([str(s) for s in JobState]))
@click.option("--job-type")
@click.option("--entity-id")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--cursor", type=JOB_ID, help="next_cursor of the previous page.")
@json_flag
@pass_app
def jobs_list(
    app: App,
    state: str | None,
    job_type: str | None,
    entity_id: str | None,
    limit: int,
    cursor: int | None,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    found = app.store.list_jobs(
        state=state, job_type=job_type, entity_id=entity_id, limit=limit + 1, before_id=cursor
    )
    page, more = found[:limit], len(found) > limit
    next_cursor = page[-1].id if more and page else None
    if as_json:
        emit_list([job.to_dict() for job in page], next_cursor)
        return
    table(JOB_COLUMNS, [job_row(job) for job in page])
    if next_cursor:
        click.echo(f"more: --cursor {next_cursor}", err=True)


@jobs.command("show")
@click.argument("job_id", type=JOB_ID)
@json_flag
@pass_app
def jobs_show(app: App, job_id: int, as_json: bool) -> None:
    """A job with every attempt, its replay lineage and the effects it filed in the ledger."""
    detail = app.services.job_detail(job_id)
    if as_json:
        emit_json(detail)
        return
    skip = {"attempts", "lineage", "payload", "last_error", "effects"}
    table(("field", "value"), [(k, v) for k, v in detail.items() if k not in skip])
    click.echo(f"payload: {json.dumps(detail['payload'])}")
    if detail["last_error"]:
        error = detail["last_error"]
        click.echo(f"last error: {shown(error.get('class'))}: {shown(error.get('message'))}")
    lineage = detail["lineage"]
    click.echo(
        f"replays: {lineage['replays'] or '-'}  replayed by: {lineage['replayed_by'] or '-'}"
    )
    table(
        ("#", "worker", "started", "ms", "outcome", "error", "http"),
        [
            (
                a["number"],
                a["worker_id"],
                a["started_at"],
                a["duration_ms"],
                a["outcome"],
                a["error_class"],
                a["http_status"],
            )
            for a in detail["attempts"]
        ],
        title="attempts",
    )
    if detail["effects"]:
        table(
            ("effect key", "upstream", "upstream ref", "filed"),
            [
                (e["effect_key"], e["upstream"], e["upstream_ref"], e["applied_at"])
                for e in detail["effects"]
            ],
            title="effects in the ledger",
        )
    else:
        click.echo("effects in the ledger: none")


@cli.group(invoke_without_command=True)
@click.option("--job-type")
@json_flag
@click.pass_context
def dlq(ctx: click.Context, job_type: str | None, as_json: bool) -> None:
    """Dead jobs with their final error snapshot (`dlq list`)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(dlq_list, job_type=job_type, limit=200, cursor=None, as_json=as_json)


@dlq.command("list")
@click.option("--job-type")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@click.option("--cursor", type=JOB_ID, help="next_cursor of the previous page.")
@json_flag
@pass_app
def dlq_list(app: App, job_type: str | None, limit: int, cursor: int | None, as_json: bool) -> None:
    found = app.store.dlq(job_type, limit + 1, before_id=cursor)
    dead, more = found[:limit], len(found) > limit
    next_cursor = dead[-1].id if more and dead else None
    if as_json:
        emit_list([job.to_dict() for job in dead], next_cursor)
        return
    table(
        ("id", "type", "entity", "attempts", "error", "effect", "finished"),
        [
            (
                j.id,
                j.job_type,
                j.entity_id,
                j.attempt,
                short_error(j),
                j.effect_status or "",
                j.finished_at,
            )
            for j in dead
        ],
    )
    if next_cursor:
        click.echo(f"more: --cursor {next_cursor}", err=True)


@cli.command()
@click.argument("job_id", type=JOB_ID, required=False)
@click.option("--all", "replay_all", is_flag=True, help="Every dead job matching the filters.")
@click.option("--job-type")
@click.option("--error-class")
@click.option("--limit", type=click.IntRange(1, 2**63 - 1))
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; change nothing.")
@json_flag
@pass_app
def replay(
    app: App,
    job_id: int | None,
    replay_all: bool,
    job_type: str | None,
    error_class: str | None,
    limit: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """New job(s) linked to dead or failed ones; prints the new ids."""
    if (job_id is None) == (not replay_all):
        raise click.UsageError("give a JOB_ID or --all (not both)")
    if job_id is not None:
        job = app.services.replay(job_id, dry_run=dry_run)
        if as_json:
            emit_json(
                {
                    "replayed_job_id": job_id,
                    "new_job_id": None if dry_run else job.id,
                    "dry_run": dry_run,
                }
            )
        else:
            click.echo(f"would replay {job_id}" if dry_run else job.id)
        return
    results = app.services.replay_all(job_type, error_class, limit, dry_run=dry_run)
    if as_json:
        emit_list(
            [
                {
                    "replayed_job_id": old.id,
                    "new_job_id": new.id if new else None,
                    "refused": refused,
                    "dry_run": dry_run,
                }
                for old, new, refused in results
            ]
        )
        return
    for old, new, refused in results:
        if refused:
            click.echo(f"{old.id}: refused: {refused}", err=True)
        elif dry_run:
            click.echo(f"would replay {old.id}")
        elif new is not None:
            click.echo(new.id)
    if not results:
        click.echo("nothing to replay", err=True)


@cli.command()
@click.argument("job_id", type=JOB_ID)
@pass_app
def retry(app: App, job_id: int) -> None:
    """A failed job back to pending with a fresh retry budget."""
    job = app.services.retry(job_id)
    click.echo(f"job {job.id} is {job.state}")


@cli.command()
@click.argument("job_id", type=JOB_ID)
@pass_app
def cancel(app: App, job_id: int) -> None:
    """Cancel a pending job now, or ask a running one to stop."""
    job = app.services.cancel(job_id)
    if job.state == JobState.RUNNING:
        click.echo(f"job {job.id} is running; asked its handler to stop")
    else:
        click.echo(f"job {job.id} is {job.state}")


@cli.group()
def plugins() -> None:
    """Installed plugins."""


@plugins.command("list")
@json_flag
@pass_app
def plugins_list(app: App, as_json: bool) -> None:
    registry = app.registry
    rows = [
        (name, job_type, registry.job_types[job_type].description)
        for name, types in sorted(registry.plugins.items())
        for job_type in types
    ]
    if as_json:
        emit_list([{"plugin": p, "job_type": t, "description": d} for p, t, d in rows])
        return
    table(("plugin", "job type", "description"), rows)
