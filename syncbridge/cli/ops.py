"""Commands that verify and converge: check and reconcile."""

from __future__ import annotations

import sys
from datetime import timedelta

import click

from syncbridge.cli.app import App
from syncbridge.cli.durations import parse_age
from syncbridge.cli.main import cli
from syncbridge.cli.output import emit_json, emit_list, table
from syncbridge.invariants import run_checks
from syncbridge.reconcile import reconcile as run_reconcile
from syncbridge.states import EffectStatus

pass_app = click.make_pass_decorator(App)


@cli.command()
@click.option(
    "--lease-grace",
    type=click.FloatRange(0, 86_400),
    default=30.0,
    show_default=True,
    help="Seconds an expired lease may stay unrecovered while a worker is alive.",
)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def check(app: App, lease_grace: float, as_json: bool) -> None:
    """Verify every invariant; exit 1 on a violation."""
    results = run_checks(app.store, lease_grace)
    if as_json:
        emit_list(
            [
                {
                    "code": r.code,
                    "title": r.title,
                    "ok": r.ok,
                    "violations": r.violations,
                    "examples": [list(map(str, e)) for e in r.examples],
                }
                for r in results
            ]
        )
    else:
        table(
            ("invariant", "result", "violations", "what", "examples"),
            [
                (
                    r.code,
                    "pass" if r.ok else "FAIL",
                    r.violations,
                    r.title,
                    r.examples if r.examples else "",
                )
                for r in results
            ],
        )
    if not all(r.ok for r in results):
        sys.exit(1)


@cli.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option(
    "--after",
    type=click.IntRange(0, 2**63 - 1),
    default=0,
    help="Go on after this job id (a previous run's next_cursor).",
)
@click.option(
    "--answer",
    type=(click.IntRange(1, 2**63 - 1), click.Choice([s.value for s in EffectStatus])),
    metavar="JOB_ID STATUS",
    help="Record your own answer for one job whose effect is unknown (you checked the upstream;"
    " it cannot tell): applied or not_applied. Asks nothing; workers stop asking about it.",
)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def reconcile(
    app: App, limit: int, after: int, answer: tuple[int, str] | None, as_json: bool
) -> None:
    """Ask upstreams about attempts that ended without a known outcome; record what happened.

    Asks about jobs in id order, at most --limit of them, each finished at least
    SYNCBRIDGE_RECONCILE_SETTLE_SECONDS ago. With a full batch, the JSON's next_cursor is the
    --after for the next run. Jobs the upstream could not answer for are asked about here
    whenever the command runs; workers ask about them again only when due (30-60 s after the
    first ask, doubling up to an hour), which the output shows. An ask made here before the
    next one was due leaves that schedule as it was.

    With --answer JOB_ID STATUS, record an operator's answer instead: for a dead, failed or
    cancelled job with an attempt of unknown outcome and no answer yet; anything else is refused
    (exit 1) and nothing changes."""
    if answer is not None:
        job_id, status = answer
        job = app.services.answer_effect(job_id, status)
        if as_json:
            emit_json(
                {"job_id": job.id, "effect_status": job.effect_status, "answered_by": "operator"}
            )
        else:
            click.echo(f"job {job.id}: effect {job.effect_status} (your answer; no more asks)")
        return
    from syncbridge.upstream import build_upstreams, close_upstreams

    upstreams = build_upstreams(app.settings)
    try:
        results = run_reconcile(
            app.store,
            app.registry,
            upstreams,
            limit,
            after_id=after,
            settle_seconds=app.settings.reconcile_settle_seconds,
        )
    finally:
        close_upstreams(upstreams)
    next_cursor = results[-1].job_id if len(results) == limit else None
    if as_json:
        items = [
            {**r.__dict__, "next_ask_at": r.next_ask_at and r.next_ask_at.isoformat()}
            for r in results
        ]
        emit_json({"items": items, "next_cursor": next_cursor})
        return
    table(
        ("job", "effect status", "upstream ref", "error", "asks", "workers ask next"),
        [
            (
                r.job_id,
                r.effect_status or "unknown",
                r.upstream_ref,
                r.error,
                r.asks,
                r.next_ask_at and r.next_ask_at.isoformat(timespec="seconds"),
            )
            for r in results
        ],
    )
    if next_cursor is not None:
        click.echo(f"more may follow: syncbridge reconcile --after {next_cursor}")


@cli.command()
@click.option("--older-than", required=True, help="Age of finished jobs to delete: 7d, 12h, 30m.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@pass_app
def prune(app: App, older_than: str, dry_run: bool) -> None:
    """Delete old finished jobs and their attempts; keeps what idempotency keys, the ledger and
    replay links still need."""
    store = app.store
    cutoff = store.clock.now() - timedelta(seconds=parse_age(older_than, "--older-than"))
    count = store.prune(cutoff, dry_run=dry_run)
    click.echo(
        f"{'would delete' if dry_run else 'deleted'} {count} jobs finished before "
        f"{cutoff.isoformat()}"
    )
