"""``syncbridge demo``: the CRM→Billing sync end to end on a fresh SQLite file.

Starts the mock upstreams as a child process and a worker in this process, enqueues a scripted
mix of healthy and failing entities, waits, heals ``c_down`` and replays its dead job, then
prints what happened and checks that Billing applied every effect once.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx

from syncbridge import migrate
from syncbridge.cli.main import cli
from syncbridge.cli.output import table
from syncbridge.config import load_settings
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.invariants import run_checks
from syncbridge.jobtypes import effect_key_lineage
from syncbridge.logs import configure_logging
from syncbridge.plugins import load_registry
from syncbridge.services import Services
from syncbridge.states import JobState
from syncbridge.upstream import build_upstreams, close_upstreams
from syncbridge.worker import Worker

CUSTOMERS = [
    "c_1001",
    "c_1003",
    "c_1004",
    "c_1005",
    "c_flaky",
    "c_1002",
    "c_down",
    "c_missing",
    "c_invalid",
]
INVOICES = ["i_2001", "i_2002", "i_2003", "i_2004", "i_2005"]
DEMO_SETTINGS = {
    "job_lease_seconds": 10.0,
    "job_backoff_seconds_base": 0.5,
    "job_backoff_seconds_cap": 5.0,
    "upstream_timeout_seconds": 2.0,
    "poll_interval_seconds": 0.05,
    "rescue_interval_seconds": 1.0,
    "shutdown_grace_seconds": 5.0,
}


@dataclass(frozen=True)
class Mocks:
    crm_url: str
    billing_url: str

    def get(self, which: str, path: str) -> Any:
        base = self.crm_url if which == "crm" else self.billing_url
        return httpx.get(base + path, timeout=5).json()

    def heal(self, entity: str) -> None:
        for base in (self.crm_url, self.billing_url):
            httpx.post(f"{base}/_faults", json={"entities": {entity: "ok"}}, timeout=5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def mock_servers(fault_rate: float, seed: int) -> Iterator[Mocks]:
    crm_port, billing_port = _free_port(), _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mocks",
            "--crm-port",
            str(crm_port),
            "--billing-port",
            str(billing_port),
            "--fault-rate",
            str(fault_rate),
            "--seed",
            str(seed),
            "--slow-seconds",
            "4",
            "--retry-after-seconds",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches us, and we stop it ourselves
    )
    mocks = Mocks(f"http://127.0.0.1:{crm_port}", f"http://127.0.0.1:{billing_port}")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                mocks.get("crm", "/_stats")
                mocks.get("billing", "/_stats")
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise click.ClickException("the mock servers did not start") from None
                time.sleep(0.1)
        yield mocks
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _wait_until_settled(store: Store, started: float, timeout: float) -> None:
    """Show progress (one updating line on a terminal, a line per change otherwise)."""
    tty = sys.stderr.isatty()
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        counts = store.counts_by_state()
        line = "  ".join(f"{state}={counts[state]}" for state in counts)
        if tty:
            click.echo(f"\r  {time.monotonic() - started:5.1f}s  {line}", nl=False, err=True)
        elif line != last:
            click.echo(f"  {time.monotonic() - started:5.1f}s  {line}", err=True)
        last = line
        if counts["pending"] == 0 and counts["running"] == 0:
            if tty:
                click.echo("", err=True)
            return
        time.sleep(0.25)
    raise click.ClickException(f"jobs did not settle within {timeout:.0f}s")


@cli.command()
@click.option(
    "--db-file",
    default="syncbridge-demo.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Recreated from scratch on every run.",
)
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve the worker's Prometheus metrics on this port while the demo runs.",
)
@click.option(
    "--hold",
    type=click.FloatRange(0, 86_400),
    default=0.0,
    help="Seconds to keep the metrics up after the summary (for a dashboard).",
)
def demo(db_file: str, fault_rate: float, seed: int, metrics_port: int | None, hold: float) -> None:
    """Run the CRM→Billing sync end to end with the mocks and print a summary."""
    path = Path(db_file)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    started = time.monotonic()
    log_path = path.with_name(path.name + ".log")
    with log_path.open("w") as log_file, mock_servers(fault_rate, seed) as mocks:
        configure_logging("json", "info", stream=log_file)
        click.echo(f"worker log (JSON lines): {log_path}", err=True)
        settings = load_settings(
            None,
            database_url=f"sqlite:///{path}",
            crm_url=mocks.crm_url,
            billing_url=mocks.billing_url,
            **DEMO_SETTINGS,
        )
        engine = make_engine(settings.database_url)
        migrate.upgrade(engine)
        store = Store(engine)
        registry = load_registry(settings.plugin_filter)
        services = Services(store, registry, settings)
        click.echo(f"database {path}; mocks {mocks.crm_url} {mocks.billing_url}", err=True)
        on_event = on_response = None
        if metrics_port is not None:
            from syncbridge.metrics import instrument_worker

            on_event, on_response = instrument_worker(
                metrics_port, store, sorted(registry.job_types), 3 * settings.job_lease_seconds
            )
        upstreams = build_upstreams(settings, on_response=on_response)
        worker = Worker(
            store,
            registry,
            settings,
            concurrency=8,
            upstreams=upstreams,
            worker_id="demo-worker",
            on_event=on_event,
        )
        thread = threading.Thread(target=worker.run, name="demo-worker")
        thread.start()
        try:
            for entity in CUSTOMERS:
                services.enqueue("customer", entity, correlation_id=f"demo-{entity}")
            for entity in INVOICES:
                services.enqueue("invoice", entity, correlation_id=f"demo-{entity}")
            click.echo(
                f"enqueued {len(CUSTOMERS)} customer and {len(INVOICES)} invoice jobs", err=True
            )
            _wait_until_settled(store, started, 45)
            [dead] = [j for j in store.dlq("customer") if j.entity_id == "c_down"]
            mocks.heal("c_down")
            replayed = services.replay(dead.id)
            click.echo(f"c_down healed; replayed dead job {dead.id} as job {replayed.id}", err=True)
            _wait_until_settled(store, started, 30)
        finally:
            worker.request_stop()
            thread.join(30)
            close_upstreams(upstreams)
        ok = _report(store, mocks)
        if metrics_port is not None and hold > 0:
            click.echo(f"serving metrics for {hold:.0f}s more (Ctrl-C to stop)", err=True)
            time.sleep(hold)
    click.echo(f"demo finished in {time.monotonic() - started:.1f}s", err=True)
    if not ok:
        sys.exit(1)


def _report(store: Store, mocks: Mocks) -> bool:
    jobs = sorted(store.list_jobs(limit=1000), key=lambda j: j.id)
    table(
        ("job", "type", "entity", "state", "attempts", "last error", "replay of"),
        [
            (
                j.id,
                j.job_type,
                j.entity_id,
                j.state,
                j.attempt,
                f"{j.last_error['class']}: {str(j.last_error['message'])[:50]}"
                if j.last_error
                else "",
                j.replay_of_job_id or "",
            )
            for j in jobs
        ],
        title="jobs",
    )
    effects: dict[str, int] = mocks.get("billing", "/_stats")["effects"]
    ledger = {row["effect_key"]: row for row in store.ledger_rows()}
    table(
        ("idempotency key", "applied by Billing", "ledger job"),
        [
            (key, times, ledger[key]["job_id"] if key in ledger else "-")
            for key, times in sorted(effects.items())
        ],
        title="Billing effects",
    )
    problems = [f"{key} applied {n} times" for key, n in effects.items() if n != 1]
    succeeded = [j for j in jobs if j.state is JobState.SUCCEEDED]
    missing = [j.id for j in succeeded if j.id not in {r["job_id"] for r in ledger.values()}]
    if missing:
        problems.append(f"succeeded jobs without a ledger row: {missing}")
    unknown = [key for key in ledger if key not in effects]
    if unknown:
        problems.append(f"ledger rows Billing never applied: {unknown}")
    # The other way round: each effect Billing applied for a lineage that succeeded (by the
    # lineage its key names) was reported by that success, on the way to the job's own or not.
    # It holds here because the demo's CRM records do not change while it runs: every retry
    # resends the same request, so the same key (FM_033 says what a changed record leaves).
    succeeded_lineages = {j.effective_lineage_id for j in succeeded}
    unrecorded = [
        key
        for key in effects
        if key not in ledger and effect_key_lineage(key) in succeeded_lineages
    ]
    if unrecorded:
        problems.append(
            f"applied by Billing for a succeeded lineage, not in the ledger: {unrecorded}"
        )
    problems += [f"{r.code} ({r.title}): {r.violations}" for r in run_checks(store) if not r.ok]
    if problems:
        click.echo("INVARIANT VIOLATED: " + "; ".join(problems), err=True)
        return False
    click.echo(
        f"every Billing effect applied exactly once ({len(effects)} keys; "
        f"{sum(1 for key in effects if key in ledger)} in the ledger); "
        f"{len(succeeded)} jobs succeeded; every invariant holds (syncbridge check)",
        err=True,
    )
    return True


__all__ = ["demo"]
