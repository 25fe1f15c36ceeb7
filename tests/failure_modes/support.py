"""Small builders shared by the failure-mode tests. Unsafe variants live in each test module,
next to the scenario they break, so that each module reads on its own."""

from __future__ import annotations

from typing import Any

from syncbridge.db.queries import Store
from syncbridge.invariants import run_checks
from syncbridge.models import EnqueueRequest


def request(entity: str = "e1", job_type: str = "noop", **kw: Any) -> EnqueueRequest:
    values: dict[str, Any] = {"payload": {}, "max_retries": 3} | kw
    return EnqueueRequest(job_type, entity, **values)


def violations(store: Store, lease_grace_seconds: float = 30.0) -> dict[str, int]:
    """The invariants ``syncbridge check`` reports as violated, with their counts."""
    return {r.code: r.violations for r in run_checks(store, lease_grace_seconds) if not r.ok}
