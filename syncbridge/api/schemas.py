"""Typed request and response bodies of the HTTP API.

Responses carry exactly what ``syncbridge ... --json`` prints (``Job.to_dict`` and
``Services.job_detail``): times are RFC 3339 strings with an offset, as ``isoformat`` writes them,
so the API and the CLI agree to the character.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    field_validator,
)

from syncbridge.errors import InvalidInput
from syncbridge.services import validate_payload
from syncbridge.states import EffectStatus, JobState

# Text the engine accepts: no C0/C1 control characters (the services refuse them too).
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"
MAX_ID = 2**63 - 1


def _json_integer(value: Any) -> Any:
    """A JSON integer (``8`` or ``8.0``), never ``true`` or ``"8"`` as lax pydantic allows."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    return value


def _iso_text(value: Any) -> Any:
    """A time as RFC 3339 text, never a bare number (lax pydantic reads one as Unix seconds)."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 time with an offset, as text")
    return value


# After the constraints in ``Annotated[...]``, so they still reach the JSON schema.
JSON_INTEGER = BeforeValidator(_json_integer)
ISO_TEXT = BeforeValidator(_iso_text)
Timestamp = Annotated[datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str)]


class ErrorOut(BaseModel):
    """Every error: a one-line ``detail``; a 422 from the body's schema adds ``errors``."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class EnqueueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_id: str = Field(min_length=1, max_length=255, pattern=PRINTABLE)
    payload: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=255, pattern=PRINTABLE
    )
    max_retries: Annotated[int, Field(ge=0, le=1000), JSON_INTEGER] | None = None
    run_at: Annotated[AwareDatetime, ISO_TEXT] | None = None

    @field_validator("payload")
    @classmethod
    def _plain_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Lone surrogates (``"\ud800"``) are valid JSON escapes but not text a database
        # stores; the same check as every other way in (CLI, UI, files).
        try:
            return validate_payload(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None


class EffectAnswerIn(BaseModel):
    """An operator's answer for a job whose effect is unknown (``reconcile --answer``)."""

    model_config = ConfigDict(extra="forbid")

    effect_status: EffectStatus = Field(
        description="What you found upstream: the effect was applied, or it was not."
    )


class ReplayAllIn(BaseModel):
    """``replay --all``: every dead job matching the filters that nothing replays yet."""

    model_config = ConfigDict(extra="forbid")

    job_type: str | None = Field(default=None, min_length=1, max_length=100, pattern=PRINTABLE)
    error_class: str | None = Field(default=None, min_length=1, max_length=200, pattern=PRINTABLE)
    limit: Annotated[int, Field(ge=1, le=10_000), JSON_INTEGER] | None = None
    dry_run: StrictBool = False


class LastError(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    error_class: str | None = Field(default=None, alias="class")
    message: str | None = None
    retryable: bool | None = None
    http_status: int | None = None


class JobOut(BaseModel):
    id: int
    job_type: str
    entity_id: str
    payload: dict[str, Any]
    state: JobState
    attempt: int
    budget_start: int
    max_retries: int
    timeout_seconds: int | None
    next_run_at: Timestamp
    lease_owner: str | None
    lease_expires_at: Timestamp | None
    cancel_requested: bool
    isolate: bool
    follow_up: bool
    follow_up_payload: dict[str, Any] | None
    correlation_id: str
    idempotency_key: str | None
    params_hash: str
    lineage_id: int
    replay_of_job_id: int | None
    replay_of_attempt_id: int | None
    last_error: LastError | None
    effect_status: str | None
    created_at: Timestamp
    updated_at: Timestamp
    finished_at: Timestamp | None


class EnqueueOut(JobOut):
    deduplicated: bool


class AttemptOut(BaseModel):
    id: int
    job_id: int
    number: int
    worker_id: str
    started_at: Timestamp
    finished_at: Timestamp | None
    duration_ms: float | None
    outcome: str
    error_class: str | None
    error_message: str | None
    retryable: bool | None
    http_status: int | None


class Lineage(BaseModel):
    replays: list[int] = Field(description="The jobs this one replays, oldest first.")
    replayed_by: list[int] = Field(description="The jobs that replay this one.")


class ReconcileOut(BaseModel):
    asks: int = Field(
        description="Times reconcile asked the upstream, which could not tell (0: a worker's"
        " first ask is under way)."
    )
    next_ask_at: Timestamp = Field(
        description="When the workers ask again (while a worker asks: when its hold ends)."
    )
    last_error: str | None = Field(description="Why the last ask got no answer.")


class EffectOut(BaseModel):
    effect_key: str = Field(description="The idempotency key the effect was sent with.")
    upstream: str
    upstream_ref: str | None = Field(description="The upstream's id for what the effect made.")
    applied_at: Timestamp = Field(description="When the ledger row was written.")


class JobDetailOut(JobOut):
    attempts: list[AttemptOut]
    lineage: Lineage
    effects: list[EffectOut] = Field(
        description="The effects this job filed in the ledger: its own and those applied on the"
        " way to it, written with its success (or found by reconcile)."
    )
    reconcile: ReconcileOut | None = Field(
        description="Where the job's effect is unknown and its upstream could not tell yet."
    )


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page.")


class ReplayOut(BaseModel):
    replayed_job_id: int
    new_job_id: int | None
    dry_run: bool
    refused: str | None = None
    job: JobOut | None = Field(default=None, description="The new job (absent on a dry run).")


class ReplayPage(BaseModel):
    items: list[ReplayOut]
    next_cursor: None = None


class Health(BaseModel):
    status: str
    detail: str | None = None
