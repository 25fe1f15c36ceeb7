"""Shared by the upstream failure-mode tests FM_020…FM_026; holds no tests.

- ``mocks_for(request)``: one real mock-server process (CRM + Billing) for the whole session,
  reset before every test (faults back to the defaults, Billing's books emptied);
- ``run_workers``: real ``Worker`` loops in threads, wired to those mocks, until a condition;
- ``per_attempt_keys``: the unsafe variant several specs use, a job type whose effect keys
  change with every attempt instead of staying fixed per lineage. This module is also a
  syncbridge plugin (``unsafe_invoice``), which ``unsafe_plugin_path`` makes loadable by real
  worker processes through a throwaway entry point.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from syncbridge_customer import validate_customer as customer_body
from syncbridge_invoice import reconcile_invoice, sync_invoice, validate_invoice

from mocks import data
from mocks.testing import MockServers, start_mock_servers
from syncbridge.config import Settings
from syncbridge.db.queries import Store
from syncbridge.hookspecs import hookimpl
from syncbridge.jobtypes import JobContext, JobType, effect_key
from syncbridge.plugins import Registry, load_registry
from syncbridge.states import ACTIVE_STATES
from syncbridge.upstream import build_upstreams, close_upstreams
from syncbridge.worker import Worker
from tests.helpers import fast_settings
from tests.processes import wait_for

WAIT = 30.0


class Mocks:
    """The shared mock servers, plus the reads the specs make of Billing's books."""

    def __init__(self, servers: MockServers) -> None:
        self.servers = servers
        self.crm_url, self.billing_url = servers.crm_url, servers.billing_url
        self.http = httpx.Client(timeout=10.0)

    def reset(self) -> None:
        self.servers.reset()

    def set_faults(self, which: Any, **changes: Any) -> dict[str, Any]:
        return self.servers.set_faults(which, **changes)

    def effects(self) -> dict[str, int]:
        """Billing's applied effects: ``{idempotency key: times applied}``."""
        return dict(self.servers.stats("billing")["effects"])

    def requests(self, which: Any) -> dict[str, int]:
        return dict(self.servers.stats(which)["requests"])

    def invoices(self, external_id: str) -> list[dict[str, Any]]:
        response = self.http.get(
            f"{self.billing_url}/invoices", params={"external_id": external_id}
        )
        response.raise_for_status()
        return list(response.json()["items"])

    def billing_customer(self, customer_id: str) -> dict[str, Any]:
        response = self.http.get(f"{self.billing_url}/customers/{customer_id}")
        response.raise_for_status()
        return dict(response.json())

    def change_crm_customer(self, customer_id: str, **fields: Any) -> dict[str, Any]:
        response = self.http.post(f"{self.crm_url}/_customers/{customer_id}", json=fields)
        response.raise_for_status()
        return dict(response.json())

    def env(self) -> dict[str, str]:
        return {"SYNCBRIDGE_CRM_URL": self.crm_url, "SYNCBRIDGE_BILLING_URL": self.billing_url}


_SHARED = pytest.StashKey[Mocks]()


def mocks_for(request: pytest.FixtureRequest) -> Mocks:
    """The session's mock servers (started on first use, stopped when pytest ends), reset."""
    config = request.config
    if _SHARED not in config.stash:
        stack = contextlib.ExitStack()
        servers = stack.enter_context(start_mock_servers())
        mocks = Mocks(servers)
        stack.callback(mocks.http.close)
        config.add_cleanup(stack.close)
        config.stash[_SHARED] = mocks
    mocks = config.stash[_SHARED]
    mocks.reset()
    return mocks


def settings_for(mocks: Mocks, **overrides: Any) -> Settings:
    return fast_settings(crm_url=mocks.crm_url, billing_url=mocks.billing_url, **overrides)


def real_registry() -> Registry:
    return load_registry(only=["customer", "invoice"])


def all_finished(store: Store) -> Callable[[], bool]:
    active = [str(state) for state in ACTIVE_STATES]
    return lambda: not any(n for state, n in store.counts_by_state().items() if state in active)


def run_workers(
    workers: list[Worker], until: Callable[[], bool], timeout: float = WAIT, what: str = "jobs"
) -> None:
    """Run the workers' loops in threads until ``until()``; stop them, wait for stray handler
    threads (a timed-out attempt's thread keeps running), and close their upstream clients."""
    threads = [threading.Thread(target=w.run, name=f"w-{w.worker_id}") for w in workers]
    for thread in threads:
        thread.start()
    try:
        wait_for(until, timeout, what)
    finally:
        for worker in workers:
            worker.request_stop()
        for thread in threads:
            thread.join(WAIT)
        for worker in workers:
            wait_for(lambda w=worker: w.stuck_threads == 0, WAIT, "stray handler threads")
            close_upstreams(worker.upstreams)


def worker(
    store: Store,
    registry: Registry,
    settings: Settings,
    cls: type[Worker] = Worker,
    transports: Mapping[str, httpx.BaseTransport] | None = None,
    **kw: Any,
) -> Worker:
    return cls(store, registry, settings, upstreams=build_upstreams(settings, transports), **kw)


def invoice_key(lineage_id: int, invoice_id: str) -> str:
    """Billing's key for the invoice POST, as the plugin computes it."""
    body = validate_invoice(data.base_invoice(invoice_id) or {}, invoice_id)
    return effect_key(lineage_id, "create_invoice", body)


def upsert_key(lineage_id: int, customer_id: str, **changes: Any) -> str:
    """The customer upsert's key; ``changes`` are CRM edits made since (with the new version)."""
    body = customer_body((data.base_customer(customer_id) or {}) | changes, customer_id)
    return effect_key(lineage_id, "upsert_customer", {"id": customer_id, **body})


def customer_of(invoice_id: str) -> str:
    return data.customer_for_invoice(int(invoice_id.removeprefix("i_")))


def per_attempt_keys(job_type: JobType, name: str) -> JobType:
    """Unsafe: the same handler, but every attempt names its effects afresh (as if the key were
    ``uuid4()`` or included the attempt number), so Billing cannot tell a retry from a new
    request."""

    def handler(ctx: JobContext) -> Any:
        def fresh_key(effect: str, body: Any) -> str:
            return effect_key(ctx.lineage_id, f"{effect}@attempt-{ctx.attempt}", body)

        ctx.effect_key = fresh_key  # type: ignore[method-assign]
        return job_type.handler(ctx)

    return JobType(name, handler, reconcile=job_type.reconcile)


UNSAFE_INVOICE = per_attempt_keys(
    JobType("invoice", sync_invoice, reconcile=reconcile_invoice), "unsafe_invoice"
)


@hookimpl
def register_job_types(register: Callable[[JobType], None]) -> None:
    """This module as a plugin, for real worker processes (see ``unsafe_plugin_path``)."""
    register(UNSAFE_INVOICE)


def unsafe_plugin_path(directory: Path) -> str:
    """A ``PYTHONPATH`` entry under which ``python -m syncbridge worker`` finds this module as
    the plugin ``unsafe`` (a bare dist-info with an entry point; nothing is installed)."""
    info = directory / "syncbridge_unsafe_fm-0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: syncbridge-unsafe-fm\nVersion: 0.0\n"
    )
    (info / "entry_points.txt").write_text(f"[syncbridge]\nunsafe = {__name__}\n")
    return str(directory)
