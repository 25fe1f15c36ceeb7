"""WorkerMetrics keeps each label set's child after its first use: every event must still land
on the child of its own labels, however the label sets interleave."""

from __future__ import annotations

import random
from collections import Counter

from syncbridge.metrics import Metrics, WorkerMetrics

TYPES = ("noop", "customer_sync", "invoice_sync")
OUTCOMES = ("succeeded", "error", "timeout")
ERRORS = ("UpstreamUnavailable", "RateLimited", None)


def test_interleaved_label_sets_each_count_exactly_their_own_events() -> None:
    metrics = Metrics()
    hooks = WorkerMetrics(metrics)
    rng = random.Random(8)
    attempts: Counter[tuple[str, str]] = Counter()
    finished: Counter[tuple[str, str]] = Counter()
    retries: Counter[str] = Counter()
    for job_id in range(600):
        job_type, outcome = rng.choice(TYPES), rng.choice(OUTCOMES)
        error_class = None if outcome == "succeeded" else rng.choice(ERRORS)
        job = {"job_id": job_id, "attempt": 1, "job_type": job_type}
        hooks.on_event("attempt_started", job)
        hooks.on_event(
            "attempt_finished",
            job | {"outcome": outcome, "duration_ms": 1.5, "error_class": error_class},
        )
        state = (
            rng.choice(("succeeded", "dead", "pending")) if outcome != "succeeded" else "succeeded"
        )
        hooks.on_event("job_state", {"job_id": job_id, "attempt": 1, "state": state})
        attempts[(job_type, outcome)] += 1
        if state == "pending":
            retries[error_class or "unknown"] += 1
        else:
            finished[(job_type, state)] += 1

    def value(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    for job_type in TYPES:
        for outcome in OUTCOMES:
            labels = {"job_type": job_type, "outcome": outcome}
            assert value("syncbridge_attempts_total", **labels) == attempts[(job_type, outcome)]
            count = value("syncbridge_attempt_duration_seconds_count", **labels)
            assert count == attempts[(job_type, outcome)]
        for state in ("succeeded", "dead"):
            expected = finished[(job_type, state)]
            assert (
                value("syncbridge_jobs_finished_total", job_type=job_type, state=state) == expected
            )
    for error_class in ("UpstreamUnavailable", "RateLimited", "unknown"):
        assert value("syncbridge_retries_total", error_class=error_class) == retries[error_class]
    assert value("syncbridge_jobs_in_flight") == 0
