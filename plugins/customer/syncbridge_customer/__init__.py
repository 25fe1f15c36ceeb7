"""syncbridge plugin: the ``customer`` job type (CRM customer → Billing customer, upsert).

The entity id is a CRM customer id. The handler reads ``GET {crm}/customers/{id}``, validates
the record, and upserts it with ``PUT {billing}/customers/{id}`` carrying an ``Idempotency-Key``
that is the same for every attempt, recovery and replay of the job's lineage sending that body.
It never touches syncbridge's database: it returns the applied effect, and the engine records it.

``reconcile_customer`` answers for a job whose last attempt ended without a known outcome (the
upsert's answer lost, a timeout, a cancel during the call): Billing lists the writes applied to
each customer with their keys and correlation ids, and a write with this job's lineage key and
correlation id means one of its upserts was applied.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from syncbridge import AppliedEffect, JobContext, JobType, Success, ValidationError
from syncbridge.errors import UpstreamUnavailable
from syncbridge.hookspecs import hookimpl
from syncbridge.jobtypes import effect_key_lineage
from syncbridge.upstream import segment

# One "@", nothing blank, and a dot inside the domain (not first, not last).
EMAIL = re.compile(r"^[^@\s]+@[^@\s.][^@\s]*\.[^@\s]*[^@\s.]$")


def _invalid(customer_id: str, field: str, problem: str) -> ValidationError:
    return ValidationError(f"CRM customer {customer_id!r}: field {field!r} {problem}", field=field)


def validate_customer(record: dict[str, Any], customer_id: str) -> dict[str, Any]:
    """The Billing body for a CRM customer record; a ValidationError names the bad field."""
    if record.get("id") != customer_id:
        raise _invalid(customer_id, "id", f"does not match the entity: {record.get('id')!r}")
    name = record.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _invalid(customer_id, "name", f"must be a non-empty string, got {name!r}")
    email = record.get("email")
    if not isinstance(email, str) or not EMAIL.match(email):
        raise _invalid(customer_id, "email", f"is not an email address: {email!r}")
    country = record.get("country")
    if country is not None and not isinstance(country, str):
        raise _invalid(customer_id, "country", f"must be a string, got {country!r}")
    version = record.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise _invalid(customer_id, "version", f"must be an integer, got {version!r}")
    # ``version`` lets Billing refuse a write older than the one it holds (a stale worker).
    return {"name": name, "email": email, "country": country, "version": version}


def stop_if_requested(ctx: JobContext, before: str) -> None:
    """Stop between upstream calls when the engine asked (cancel, lost lease, timeout). The
    error is retryable: the engine records the right outcome for the reason it asked."""
    if ctx.cancel_requested:
        raise UpstreamUnavailable(f"stopped before {before}: {ctx.stop_reason or 'requested'}")


def sync_customer(ctx: JobContext) -> Success:
    customer_id = ctx.entity_id
    record = ctx.upstream("crm").get_json(f"/customers/{segment(customer_id)}")
    body = validate_customer(record, customer_id)
    stop_if_requested(ctx, "PUT /customers")
    # The target id is hashed with the body: the key names the whole request, path included.
    key = ctx.effect_key("upsert_customer", {"id": customer_id, **body})
    if not put_customer(ctx, customer_id, body, key):
        return Success()  # superseded: Billing already holds a newer version; nothing applied
    return Success(
        effect=AppliedEffect(effect_key=key, upstream="billing", upstream_ref=customer_id)
    )


def put_customer(ctx: JobContext, customer_id: str, body: dict[str, Any], key: str) -> bool:
    """Upsert into Billing; False when Billing refused it as older than what it holds."""
    billing = ctx.upstream("billing")
    path = f"/customers/{segment(customer_id)}"
    response = billing.request("PUT", path, json=body, idempotency_key=key)
    if response.status_code != 409:
        return True
    answer = billing.json_body(response, f"PUT {path}")
    if answer.get("detail") != "stale version":
        raise ValidationError(f"billing PUT {path} -> 409: {answer}", http_status=409)
    ctx.log.info(
        "customer_write_superseded",
        version=body.get("version"),
        current_version=answer.get("current_version"),
    )
    return False


def reconcile_customer(ctx: JobContext) -> AppliedEffect | None:
    """Did one of this job's attempts upsert the customer? Billing lists the writes applied to
    a customer with the idempotency key and the ``X-Correlation-ID`` of the request that made
    each. A write is this job's if its key belongs to this job's lineage and it carries this
    job's correlation id: a replay shares the lineage (and, for the same body, the key) but has
    a correlation id of its own, so neither is credited with the other's write. The last such
    write is the effect (the CRM record may have changed between attempts); none means not
    applied, unless Billing is still processing a request of this job. Raises when Billing
    cannot tell now (any error, or such a request): reconcile asks again later."""
    billing = ctx.upstream("billing")
    answer = billing.get_json("/customer_writes", params={"customer_id": ctx.entity_id})
    writes, pending = answer.get("items"), answer.get("in_progress")
    if not isinstance(writes, list) or not isinstance(pending, list):
        raise UpstreamUnavailable(
            f"billing GET /customer_writes -> no item lists in {answer!r:.80}"
        )
    if any(isinstance(p, dict) and p.get("correlation_id") == ctx.correlation_id for p in pending):
        # Billing is still working on a request of this job (its client gave up waiting, or
        # the answer was "request in progress"): it may yet be applied. Ask again later.
        raise UpstreamUnavailable("billing is still processing a write of this job")
    ours = [
        key
        for write in writes
        if isinstance(write, dict)
        and write.get("correlation_id") == ctx.correlation_id
        and isinstance(key := write.get("idempotency_key"), str)
        and effect_key_lineage(key) == ctx.lineage_id
    ]
    if not ours:
        return None
    return AppliedEffect(effect_key=ours[-1], upstream="billing", upstream_ref=ctx.entity_id)


@hookimpl
def register_job_types(register: Callable[[JobType], None]) -> None:
    register(
        JobType(
            name="customer",
            handler=sync_customer,
            description="sync a CRM customer into Billing (upsert)",
            timeout_seconds=60,
            reconcile=reconcile_customer,
        )
    )
