"""`python -m mocks`: serve mock CRM and mock Billing until SIGTERM/SIGINT."""

from __future__ import annotations

import click

from mocks.idempotency import DEFAULT_TTL_SECONDS
from mocks.server import serve


@click.command(context_settings={"show_default": True})
@click.option("--host", default="127.0.0.1")
@click.option("--crm-port", type=click.IntRange(0, 65535), default=8101)
@click.option("--billing-port", type=click.IntRange(0, 65535), default=8102)
@click.option("--fault-rate", type=click.FloatRange(0.0, 1.0), default=0.0)
@click.option("--max-faults-per-entity", type=click.IntRange(min=0), default=3)
@click.option("--latency-ms", type=click.IntRange(min=0), default=0)
@click.option("--seed", type=int, default=0)
@click.option("--slow-seconds", type=click.FloatRange(min=0.0), default=15.0)
@click.option("--retry-after-seconds", type=click.FloatRange(min=0.0), default=1.0)
@click.option("--lost-response-rate", type=click.FloatRange(0.0, 1.0), default=0.0)
@click.option(
    "--idempotency-ttl-seconds", type=click.FloatRange(min=0.0), default=DEFAULT_TTL_SECONDS
)
def main(
    host: str,
    crm_port: int,
    billing_port: int,
    fault_rate: float,
    max_faults_per_entity: int,
    latency_ms: int,
    seed: int,
    slow_seconds: float,
    retry_after_seconds: float,
    lost_response_rate: float,
    idempotency_ttl_seconds: float,
) -> None:
    """Mock CRM and Billing upstreams with deterministic fault injection."""
    serve(
        host=host,
        crm_port=crm_port,
        billing_port=billing_port,
        fault_rate=fault_rate,
        max_faults_per_entity=max_faults_per_entity,
        latency_ms=latency_ms,
        seed=seed,
        slow_seconds=slow_seconds,
        retry_after_seconds=retry_after_seconds,
        lost_response_rate=lost_response_rate,
        idempotency_ttl_seconds=idempotency_ttl_seconds,
    )


if __name__ == "__main__":
    main()
