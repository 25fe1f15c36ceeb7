"""Typed rows and the values passed between the worker and the store."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, NamedTuple

from syncbridge.errors import InvalidInput
from syncbridge.jobtypes import AppliedEffect
from syncbridge.json_codec import json_loads
from syncbridge.states import AttemptOutcome, JobState


@dataclass(frozen=True)
class Job:
    id: int
    job_type: str
    entity_id: str
    payload: dict[str, Any]
    state: JobState
    attempt: int
    budget_start: int
    max_retries: int
    timeout_seconds: int | None
    next_run_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    isolate: bool
    follow_up: bool
    follow_up_payload: dict[str, Any] | None
    correlation_id: str
    idempotency_key: str | None
    params_hash: str
    lineage_id: int | None
    replay_of_job_id: int | None
    replay_of_attempt_id: int | None
    last_error: dict[str, Any] | None
    effect_status: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        # On the claim and completion path for every job: names looked up once, not per row.
        mapping = row._mapping
        values = {name: mapping[name] for name in JOB_FIELDS}
        values["state"] = JobState(values["state"])
        if values["lineage_id"] is None:  # stored NULL: a job that replays nothing
            values["lineage_id"] = values["id"]
        return cls(**values)

    @classmethod
    def from_driver_row(cls, row: Sequence[Any]) -> Job:
        """A job from a psycopg row holding every column in field order (the PostgreSQL hot
        paths): times made UTC, as ``UTCDateTime`` does. Built as :meth:`new_pending` is."""
        values = dict(zip(JOB_FIELDS, row, strict=True))
        for name in _TIME_FIELDS:
            stamp = values[name]
            # Already UTC on the store's connections (``engine.set_session_utc``).
            if stamp is not None and stamp.tzinfo is not UTC:
                values[name] = stamp.astimezone(UTC)
        return cls._from_stored(values)

    @classmethod
    def from_sqlite_row(cls, row: Sequence[Any]) -> Job:
        """A job from a ``sqlite3`` row holding every column in field order: JSON decoded,
        booleans from 0/1, stored naive-UTC text made aware UTC, as the column types do."""
        values = dict(zip(JOB_FIELDS, row, strict=True))
        for name in _JSON_FIELDS:
            text = values[name]
            if text is not None:
                values[name] = json_loads(text)
        for name in _BOOL_FIELDS:
            values[name] = bool(values[name])
        for name in _TIME_FIELDS:
            text = values[name]
            if text is not None:
                values[name] = datetime.fromisoformat(text).replace(tzinfo=UTC)
        return cls._from_stored(values)

    @classmethod
    def _from_stored(cls, values: dict[str, Any]) -> Job:
        """A job from its column values, already of the right Python types but the state
        (text) and the lineage (stored NULL: a job that replays nothing is its own lineage).
        Built without ``__init__``, as :meth:`new_pending` is."""
        values["state"] = _STATES[values["state"]]  # a dict lookup: Enum() costs ten times more
        if values["lineage_id"] is None:
            values["lineage_id"] = values["id"]
        job = object.__new__(cls)
        job.__dict__.update(values)
        return job

    @classmethod
    def new_pending(
        cls,
        id: int,
        request: EnqueueRequest,
        params_hash: str,
        correlation_id: str,
        next_run_at: datetime,
        created_at: datetime,
    ) -> Job:
        """The job an enqueue of ``request`` just inserted: pending, never run, its own lineage,
        created and updated at ``created_at``. Built without ``__init__``, which sets each of the
        27 fields of a frozen dataclass through ``object.__setattr__``: bulk enqueue builds one
        per row, and this is about five times faster. Equal to the ``__init__``-built job (a test
        checks)."""
        values = _PENDING.copy()
        values["id"] = id
        values["job_type"] = request.job_type
        values["entity_id"] = request.entity_id
        values["payload"] = request.payload
        values["max_retries"] = request.max_retries
        values["timeout_seconds"] = request.timeout_seconds
        values["next_run_at"] = next_run_at
        values["correlation_id"] = correlation_id
        values["idempotency_key"] = request.idempotency_key
        values["params_hash"] = params_hash
        values["lineage_id"] = id
        values["created_at"] = created_at
        values["updated_at"] = created_at
        job = object.__new__(cls)
        job.__dict__.update(values)
        return job

    @property
    def charged_attempts(self) -> int:
        """Attempts that count against the retry budget (released ones do not)."""
        return self.attempt - self.budget_start

    @property
    def effective_lineage_id(self) -> int:
        return self.lineage_id if self.lineage_id is not None else self.id

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = str(self.state)
        data["lineage_id"] = self.effective_lineage_id
        return {key: _jsonable(value) for key, value in data.items()}


class ClaimedJob(NamedTuple):
    """What a worker needs to run a job it just claimed: 11 of the job's 27 columns, built
    straight from the claim's row (``LifecycleStore.claim_to_run``). On the worker's hot path,
    reading and building the other 16 cost about 2.5 µs a job."""

    id: int
    job_type: str
    entity_id: str
    payload: dict[str, Any]
    attempt: int  # this attempt's number
    timeout_seconds: int | None
    isolate: bool
    correlation_id: str
    lineage_id: int  # the job's own id when it replays nothing
    updated_at: datetime  # the claim's time
    next_run_at: datetime

    @property
    def effective_lineage_id(self) -> int:
        return self.lineage_id

    @classmethod
    def of(cls, job: Job) -> ClaimedJob:
        return cls(
            job.id,
            job.job_type,
            job.entity_id,
            job.payload,
            job.attempt,
            job.timeout_seconds,
            job.isolate,
            job.correlation_id,
            job.effective_lineage_id,
            job.updated_at,
            job.next_run_at,
        )


JOB_FIELDS = tuple(f.name for f in fields(Job))
_TIME_FIELDS = tuple(f.name for f in fields(Job) if "datetime" in str(f.type))
_STATES = {str(state): state for state in JobState}
_JSON_FIELDS = ("payload", "follow_up_payload", "last_error")
_BOOL_FIELDS = ("cancel_requested", "isolate", "follow_up")
# Every field of a just-enqueued job that does not come from its request (see Job.new_pending).
_PENDING: dict[str, Any] = dict.fromkeys(JOB_FIELDS) | {
    "state": JobState.PENDING,
    "attempt": 0,
    "budget_start": 0,
    "cancel_requested": False,
    "isolate": False,
    "follow_up": False,
}


@dataclass(frozen=True)
class Attempt:
    id: int
    job_id: int
    number: int
    worker_id: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    error_class: str | None
    error_message: str | None
    retryable: bool | None
    http_status: int | None

    @classmethod
    def from_row(cls, row: Any) -> Attempt:
        return cls(**{f.name: row._mapping[f.name] for f in fields(cls)})

    @property
    def duration_ms(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds() * 1000, 3)

    def to_dict(self) -> dict[str, Any]:
        data = {key: _jsonable(value) for key, value in asdict(self).items()}
        data["duration_ms"] = self.duration_ms
        return data


@dataclass(frozen=True)
class ErrorSnapshot:
    error_class: str
    message: str
    retryable: bool
    http_status: int | None = None
    retry_after: float | None = None
    traceback_tail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.error_class,
            "message": self.message,
            "retryable": self.retryable,
            "http_status": self.http_status,
            "traceback_tail": self.traceback_tail,
        }


@dataclass(frozen=True)
class EnqueueRequest:
    job_type: str
    entity_id: str
    payload: dict[str, Any]
    max_retries: int
    idempotency_key: str | None = None
    correlation_id: str | None = None
    run_at: datetime | None = None
    timeout_seconds: int | None = None


@dataclass(frozen=True)
class EnqueueResult:
    job: Job
    deduplicated: bool
    follow_up_marked: bool = False


@dataclass(frozen=True)
class Completion:
    """What a worker reports about one attempt it ran (or gave up on)."""

    job_id: int
    attempt: int
    worker_id: str
    outcome: AttemptOutcome
    error: ErrorSnapshot | None = None
    effect: AppliedEffect | None = None  # the job's own (``Success.effect``)
    also_applied: tuple[AppliedEffect, ...] = ()  # applied on the way to it

    @property
    def effects(self) -> tuple[AppliedEffect, ...]:
        """Every effect a succeeded attempt reported: each gets a ledger row."""
        if self.effect is None:
            return self.also_applied
        return (self.effect, *self.also_applied)


@dataclass(frozen=True)
class CompletionResult:
    job_id: int
    attempt: int
    applied: bool  # False: the lease was lost; nothing was written
    state: JobState | None = None
    follow_up_job_id: int | None = None


@dataclass(frozen=True)
class RenewResult:
    renewed: frozenset[int]
    lost: frozenset[int]
    cancel_requested: frozenset[int]


@dataclass(frozen=True)
class RescuedJob:
    job_id: int
    attempt: int
    previous_owner: str | None
    state: JobState
    job_type: str


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# The ``correlation_id`` column's width.
CORRELATION_ID_MAX = 200
# What a derived correlation id ends with: see ``derived_correlation_id``.
_DERIVED_SUFFIXES = re.compile(r"(?:~follow-up|~replay-[0-9a-f]{8})+\Z")


def correlation_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a job's correlation id, or None. It travels as the
    ``X-Correlation-ID`` header of every upstream call: text that is not printable ASCII, or has
    a space at either end, made every call of the job fail before it left the process."""
    if len(value) > CORRELATION_ID_MAX:
        return f"is {len(value)} characters long; the limit is {CORRELATION_ID_MAX}"
    if not value or not value.isascii() or not value.isprintable() or value != value.strip():
        return (
            "must be printable ASCII with no space at either end (it is sent upstream as the "
            f"X-Correlation-ID header), got {value!r}"
        )
    return None


def check_correlation_id(value: str) -> None:
    """Refuse (``InvalidInput``) what :func:`correlation_id_problem` finds wrong."""
    problem = correlation_id_problem(value)
    if problem is not None:
        raise InvalidInput(f"correlation id {problem}")


def derived_correlation_id(parent: str, suffix: str) -> str:
    """The correlation id of a job made from another (its follow-up, a replay of it): the id
    the chain started with, the suffixes earlier derivations added taken off, then ``~suffix``.
    Appending to the parent's full id grew it by a suffix per generation until it no longer fit
    the column (an entity changing while its jobs run: the 17th follow-up's insert failed, and
    with it the completion and the rescue that carried it). Cut to fit the column."""
    root = _DERIVED_SUFFIXES.sub("", parent)
    tail = f"~{suffix}"
    return root[: CORRELATION_ID_MAX - len(tail)] + tail
