"""Run mock CRM and mock Billing in one process: two uvicorn servers on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from mocks.billing import BillingState, create_billing_app
from mocks.crm import CrmState, create_crm_app
from mocks.faults import (
    BILLING_DEFAULT_ENTITIES,
    CRM_DEFAULT_ENTITIES,
    Behaviour,
    FaultBudget,
    FaultSettings,
)
from mocks.idempotency import DEFAULT_TTL_SECONDS
from mocks.logs import configure_logging

log = logging.getLogger("mocks.server")
# Long enough for a normal answer to go out; short enough that a `slow` request (15 s by
# default) does not hold up a SIGTERM.
GRACEFUL_SHUTDOWN_SECONDS = 2


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to `serve()`.

    uvicorn's own handling would let the second server overwrite the first one's handler, and
    it re-raises the signal after shutting down, so the process would die of SIGTERM instead
    of exiting 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    @property
    def port(self) -> int:
        # The bound port, which differs from the configured one when that was 0.
        sockets = self.servers[0].sockets if self.servers else ()
        return int(sockets[0].getsockname()[1]) if sockets else self.config.port


def serve(
    host: str = "127.0.0.1",
    crm_port: int = 8101,
    billing_port: int = 8102,
    fault_rate: float = 0.0,
    max_faults_per_entity: int = 3,
    latency_ms: int = 0,
    seed: int = 0,
    slow_seconds: float = 15.0,
    retry_after_seconds: float = 1.0,
    lost_response_rate: float = 0.0,
    idempotency_ttl_seconds: float = DEFAULT_TTL_SECONDS,
) -> None:
    """Serve both mocks until SIGTERM or SIGINT, then shut down cleanly and return."""
    configure_logging()

    def settings(entities: dict[str, Behaviour]) -> FaultSettings:
        return FaultSettings(
            fault_rate=fault_rate,
            lost_response_rate=lost_response_rate,
            max_faults_per_entity=max_faults_per_entity,
            latency_ms=latency_ms,
            seed=seed,
            slow_seconds=slow_seconds,
            retry_after_seconds=retry_after_seconds,
            entities=dict(entities),
        )

    budget = FaultBudget()  # one job's faults are counted across both servers
    crm = create_crm_app(CrmState(settings(CRM_DEFAULT_ENTITIES), budget))
    billing = create_billing_app(
        BillingState(
            settings(BILLING_DEFAULT_ENTITIES),
            idempotency_ttl_seconds=idempotency_ttl_seconds,
            budget=budget,
        )
    )
    servers = {
        "crm": _server(crm, host, crm_port),
        "billing": _server(billing, host, billing_port),
    }
    asyncio.run(_run(servers, host))


def _server(app: FastAPI, host: str, port: int) -> _Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # keep our JSON logging; uvicorn's dictConfig would replace it
        access_log=False,  # the apps write their own line per request, with correlation id
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return _Server(config)


async def _run(servers: dict[str, _Server], host: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(s.serve(), name=f"serve-{n}") for n, s in servers.items()]
    stopping = asyncio.create_task(stop.wait(), name="wait-for-signal")
    try:
        # Announce once every server is bound, unless one failed or we were stopped first.
        while not all(s.started for s in servers.values()):
            if stop.is_set() or any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.02)
        else:
            for name, s in servers.items():
                line = f"{name} listening on http://{host}:{s.port}"
                print(line, flush=True)  # stdout, for whoever started us and waits for it
                log.info(line, extra={"fields": {"server": name, "port": s.port}})
        # Run until a signal, or until a server stops on its own (e.g. its port was taken).
        await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for s in servers.values():
            s.should_exit = True
        stopping.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        # Re-raises a server's failure (uvicorn exits 1 when it cannot bind), so we do too.
        await asyncio.gather(*tasks)
    log.info("stopped", extra={"fields": {"servers": sorted(servers)}})
