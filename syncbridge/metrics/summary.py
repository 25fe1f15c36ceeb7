"""The JSON summary behind ``GET /api/metrics`` and ``syncbridge stats``.

Computed from the database, so it is the same whichever process answers and whatever processes
did the work. Durations are ``*_ms``; rates are 0-1 (``null`` while nothing has finished).
"""

from __future__ import annotations

from typing import Any

from syncbridge.db.queries import Store
from syncbridge.metrics.database import DEFAULT_STALE_AFTER_SECONDS
from syncbridge.metrics.queries import attempt_stats, job_counts, worker_snapshot
from syncbridge.states import TERMINAL_STATES, JobState

_STATES = [str(state) for state in JobState]
_TERMINAL = {str(state) for state in TERMINAL_STATES}
# Cancelling is a person's decision, not a failure: it stays out of the success rate.
_JUDGED = ("succeeded", "failed", "dead")


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def summary(
    store: Store, stale_after_seconds: float = DEFAULT_STALE_AFTER_SECONDS
) -> dict[str, Any]:
    """Totals, success rate, retries, average attempt duration, queue depth, DLQ size.

    ``success_rate`` is succeeded / (succeeded + failed + dead); ``retries`` counts attempts
    that ended retryably and sent their job back for another attempt; the average duration is
    over attempts that ran to an outcome of their own (claim to recorded completion).
    """
    workers = worker_snapshot(store, stale_after_seconds)
    groups = job_counts(store)
    stats = attempt_stats(store)
    by_state = dict.fromkeys(_STATES, 0)
    by_type: dict[str, dict[str, Any]] = {}
    oldest = None
    for group in groups:
        by_state[group.state] = by_state.get(group.state, 0) + group.jobs
        entry = by_type.setdefault(group.job_type, {"states": dict.fromkeys(_STATES, 0)})
        entry["states"][group.state] += group.jobs
        if group.oldest_runnable is not None and (oldest is None or group.oldest_runnable < oldest):
            oldest = group.oldest_runnable
    for job_type, entry in by_type.items():
        states = entry["states"]
        attempts, retries = stats.by_type.get(job_type, (0, 0))
        entry |= {
            "total": sum(states.values()),
            "success_rate": _rate(states["succeeded"], sum(states[s] for s in _JUDGED)),
            "attempts": attempts,
            "retries": retries,
        }
    oldest_ms = 0.0
    if oldest is not None:
        oldest_ms = round(max(0.0, (workers.now - oldest).total_seconds()) * 1000, 3)
    return {
        "generated_at": workers.now.isoformat(),
        "total": sum(by_state.values()),
        "finished": sum(by_state[s] for s in _TERMINAL),
        "succeeded": by_state["succeeded"],
        "failed": by_state["failed"],
        "dead": by_state["dead"],
        "cancelled": by_state["cancelled"],
        "success_rate": _rate(by_state["succeeded"], sum(by_state[s] for s in _JUDGED)),
        "attempts": stats.attempts,
        "retries": stats.retries,
        "avg_attempt_duration_ms": stats.avg_duration_ms,
        "queue_depth": by_state,
        "dlq_size": by_state["dead"],
        "oldest_runnable_age_ms": oldest_ms,
        "workers_live": workers.live,
        "workers_stale": workers.stale,
        "by_job_type": dict(sorted(by_type.items())),
    }
