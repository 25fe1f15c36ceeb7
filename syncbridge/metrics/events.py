"""Worker events to metrics: pass ``WorkerMetrics().on_event`` as ``Worker(on_event=...)``.

The worker reports how an attempt ended (``attempt_finished``: job type, outcome, error class)
before the store decides what that means for the job (``job_state``: retry, dead, succeeded...).
The second event names only the job and attempt, so the first is remembered by (job id, attempt)
until the second arrives. Ids live in that map, never in a label.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from prometheus_client.metrics import MetricWrapperBase

from syncbridge.metrics.instruments import Metrics
from syncbridge.states import TERMINAL_STATES, JobState

LEASE_EXPIRED = "LeaseExpired"  # the error class the rescuer records on an expired attempt
UNKNOWN = "unknown"
_TERMINAL = frozenset(str(state) for state in TERMINAL_STATES)
_Metric = TypeVar("_Metric", bound=MetricWrapperBase)


class WorkerMetrics:
    def __init__(self, metrics: Metrics | None = None) -> None:
        if metrics is None:
            from syncbridge.metrics import process_metrics

            metrics = process_metrics()
        self.metrics = metrics
        self._finishing: dict[tuple[int, int], tuple[str, str]] = {}
        # Label children by metric and label values, looked up once (``_child``).
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}
        self._lock = threading.Lock()
        self._handlers: dict[str, Callable[[Mapping[str, Any]], None]] = {
            "worker_started": self._worker_started,
            "attempt_started": self._attempt_started,
            "attempt_finished": self._attempt_finished,
            "job_state": self._job_state,
            "lease_lost": self._lease_lost,
            "jobs_recovered": self._jobs_recovered,
            "jobs_released": self._jobs_released,
            "database_lost": self._database_lost,
            "database_reconnected": self._database_reconnected,
            "worker_stopped": self._worker_stopped,
        }

    def on_event(self, event: str, fields: Mapping[str, Any]) -> None:
        handler = self._handlers.get(event)
        if handler is not None:
            with self._lock:
                handler(fields)

    def _child(self, metric: _Metric, *labels: str) -> _Metric:
        """``metric.labels(*labels)``, looked up once: ``.labels()`` validates and locks on
        every call (0.8 µs), and a job's events took three of them on the loop thread. Label
        sets are bounded (see instruments.py), so this map is too. Called under ``_lock``."""
        child = self._children.get((metric, labels))
        if child is None:
            child = self._children[(metric, labels)] = metric.labels(*labels)
        return child

    # -- one handler per event -----------------------------------------------------------------

    def _worker_started(self, fields: Mapping[str, Any]) -> None:
        self.metrics.concurrency.set(int(fields.get("concurrency", 0)))
        self.metrics.database_up.set(1)

    def _attempt_started(self, fields: Mapping[str, Any]) -> None:
        self.metrics.in_flight.inc()

    def _attempt_finished(self, fields: Mapping[str, Any]) -> None:
        m = self.metrics
        job_type, outcome = str(fields["job_type"]), str(fields["outcome"])
        m.in_flight.dec()
        self._child(m.attempts, job_type, outcome).inc()
        duration = float(fields["duration_ms"]) / 1000
        self._child(m.attempt_duration, job_type, outcome).observe(duration)
        error_class = fields.get("error_class") or UNKNOWN
        self._finishing[(int(fields["job_id"]), int(fields["attempt"]))] = (job_type, error_class)

    def _job_state(self, fields: Mapping[str, Any]) -> None:
        key = (int(fields["job_id"]), int(fields["attempt"]))
        job_type, error_class = self._finishing.pop(key, (UNKNOWN, UNKNOWN))
        state = str(fields["state"])
        if state == JobState.PENDING:
            self._child(self.metrics.retries, error_class).inc()
        elif state in _TERMINAL:
            self._child(self.metrics.jobs_finished, job_type, state).inc()

    def _lease_lost(self, fields: Mapping[str, Any]) -> None:
        key = (int(fields["job_id"]), int(fields["attempt"]))
        job_type, _ = self._finishing.pop(key, (UNKNOWN, UNKNOWN))
        self._child(self.metrics.leases_lost, job_type).inc()

    def _jobs_recovered(self, fields: Mapping[str, Any]) -> None:
        m = self.metrics
        m.lease_expirations.inc(int(fields["count"]))
        by_state: Mapping[str, int] = fields["by_state"]
        for state, count in by_state.items():
            self._child(m.jobs_recovered, str(state)).inc(count)
            if state == JobState.PENDING:
                self._child(m.retries, LEASE_EXPIRED).inc(count)
        # Jobs whose last attempt ended with its lease never reach ``job_state``: they finish
        # here, and count by their type as every other finished job does.
        finished: Mapping[str, Mapping[str, int]] = fields.get("finished_by_type", {})
        for job_type, states in finished.items():
            for state, count in states.items():
                self._child(m.jobs_finished, str(job_type), str(state)).inc(count)

    def _jobs_released(self, fields: Mapping[str, Any]) -> None:
        count = int(fields["count"])
        self.metrics.jobs_released.inc(count)
        self.metrics.in_flight.dec(count)

    def _database_lost(self, fields: Mapping[str, Any]) -> None:
        self.metrics.database_outages.inc()
        self.metrics.database_up.set(0)

    def _database_reconnected(self, fields: Mapping[str, Any]) -> None:
        self.metrics.database_up.set(1)
        self.metrics.database_outage_seconds.inc(float(fields.get("down_seconds", 0.0)))

    def _worker_stopped(self, fields: Mapping[str, Any]) -> None:
        self.metrics.in_flight.set(0)
        self._finishing.clear()
