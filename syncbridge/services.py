"""Operations shared by the CLI and the HTTP API: one implementation of each, with the input
validation that keeps bad requests out of the database."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from syncbridge.config import Settings
from syncbridge.db.queries import Store
from syncbridge.errors import IllegalTransition, InvalidInput
from syncbridge.logs import get_logger
from syncbridge.metrics import observe_enqueue
from syncbridge.models import (
    CORRELATION_ID_MAX,
    EnqueueRequest,
    EnqueueResult,
    Job,
    check_correlation_id,
)
from syncbridge.plugins import Registry
from syncbridge.states import EffectStatus

ENTITY_ID_MAX = 255
KEY_MAX = 255
# A bulk load this large gets fresh planner statistics at once (Store.refresh_statistics).
REFRESH_STATISTICS_AFTER = 10_000
# A payload's JSON, encoded: jobs carry references and small records, not documents. Every row
# of a claim batch is read into the worker's memory, and reads need no token.
PAYLOAD_MAX_BYTES = 1024 * 1024
# C0, DEL and C1 (``\x9b`` is a one-byte terminal CSI); lone surrogates are not text at all.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
SURROGATE = re.compile(r"[\ud800-\udfff]")
# Invisible characters that change how the text around them is shown: bidi overrides and
# isolates, zero-width characters (format, Cf) and the line and paragraph separators. In an id
# they let two different ids look alike, or one look like another.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zl", "Zp"})


def validate_text(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, not {_json_type(value)}")
    if not value:
        raise InvalidInput(f"{name} must not be empty")
    if len(value) > limit:
        raise InvalidInput(f"{name} is {len(value)} characters long; the limit is {limit}")
    if _CONTROL.search(value):
        raise InvalidInput(f"{name} must not contain control characters")
    if SURROGATE.search(value):
        raise InvalidInput(f"{name} must be valid UTF-8 text")
    if not value.isascii():
        for char in value:
            if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
                code = f"U+{ord(char):04X}"
                raise InvalidInput(
                    f"{name} must not contain invisible formatting characters ({code})"
                )
    return value


def validate_correlation_id(value: Any) -> None:
    """A caller's correlation id: text as :func:`validate_text` takes it, and sendable as the
    ``X-Correlation-ID`` header every upstream call carries (printable ASCII, no space at either
    end). Accepted otherwise, it made every upstream call of the job fail before it left the
    process (``UnicodeEncodeError``, or h11's refusal), retried until the job was dead."""
    validate_text("correlation id", value, CORRELATION_ID_MAX)
    check_correlation_id(value)


def validate_payload(payload: object) -> dict[str, Any]:
    """A payload the engine stores and hands back unchanged: a JSON object of plain JSON (no
    NaN or Infinity), valid UTF-8 text (no lone surrogate), at most ``PAYLOAD_MAX_BYTES``."""
    if not isinstance(payload, dict):
        raise InvalidInput(f"payload must be a JSON object, not {_json_type(payload)}")
    try:
        encoded = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except RecursionError:
        raise InvalidInput("payload is nested too deeply") from None
    except UnicodeEncodeError:
        raise InvalidInput("payload must be valid UTF-8 text (it holds a lone surrogate)") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"payload must be plain JSON (no NaN or Infinity): {exc}") from None
    if len(encoded) > PAYLOAD_MAX_BYTES:
        raise InvalidInput(
            f"payload is {len(encoded):,} bytes of JSON; the limit is {PAYLOAD_MAX_BYTES:,}"
        )
    return payload


def _json_type(value: object) -> str:
    """How a JSON reader would name ``value``'s type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@dataclass(frozen=True)
class Services:
    store: Store
    registry: Registry
    settings: Settings

    def enqueue(
        self,
        job_type: str,
        entity_id: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        max_retries: int | None = None,
        run_at: datetime | None = None,
    ) -> EnqueueResult:
        result = self.store.enqueue(
            self.build_request(
                job_type,
                entity_id,
                payload,
                idempotency_key=idempotency_key,
                correlation_id=correlation_id,
                max_retries=max_retries,
                run_at=run_at,
            )
        )
        observe_enqueue(result.job.job_type, result.deduplicated)
        return result

    def build_request(
        self,
        job_type: str,
        entity_id: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        max_retries: int | None = None,
        run_at: datetime | None = None,
    ) -> EnqueueRequest:
        """Validate one enqueue; raises :class:`InvalidInput` naming what is wrong."""
        if not isinstance(job_type, str):
            raise InvalidInput(f"job type must be a string, not {_json_type(job_type)}")
        kind = self.registry.get(job_type)
        validate_text("entity id", entity_id, ENTITY_ID_MAX)
        payload = validate_payload({} if payload is None else payload)
        if idempotency_key is not None:
            validate_text("idempotency key", idempotency_key, KEY_MAX)
        if correlation_id is not None:
            validate_correlation_id(correlation_id)
        if max_retries is None:
            max_retries = kind.max_retries
        if max_retries is None:
            max_retries = self.settings.job_max_retries_default
        if isinstance(max_retries, bool) or not isinstance(max_retries, int):
            raise InvalidInput(f"max retries must be an integer, not {_json_type(max_retries)}")
        if not 0 <= max_retries <= 1000:
            raise InvalidInput("max retries must be between 0 and 1000")
        if run_at is not None and not isinstance(run_at, datetime):
            raise InvalidInput(f"run-at must be a time, not {_json_type(run_at)}")
        if run_at is not None and run_at.tzinfo is None:
            raise InvalidInput("run-at needs a time zone offset (for example 2030-01-01T00:00Z)")
        if run_at is not None:
            try:
                run_at = run_at.astimezone(UTC)
            except OverflowError:
                raise InvalidInput(f"run-at {run_at.isoformat()} is out of range") from None
        timeout = int(kind.timeout_seconds) if kind.timeout_seconds else None
        return EnqueueRequest(
            job_type=job_type,
            entity_id=entity_id,
            payload=payload,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
            correlation_id=correlation_id,
            run_at=run_at,
            timeout_seconds=timeout,
        )

    def enqueue_many(self, requests: list[EnqueueRequest]) -> list[EnqueueResult]:
        """Requests built (and so validated) by :meth:`build_request`."""
        results = self.store.enqueue_many(requests)
        for result in results:
            observe_enqueue(result.job.job_type, result.deduplicated)
        if sum(not result.deduplicated for result in results) >= REFRESH_STATISTICS_AFTER:
            self.store.refresh_statistics()  # workers' claims stay on the runnable index
        return results

    def job_detail(self, job_id: int) -> dict[str, Any]:
        job = self.store.get_job(job_id)
        detail = job.to_dict()
        detail["attempts"] = [attempt.to_dict() for attempt in self.store.attempts_of(job_id)]
        detail["lineage"] = self.store.lineage_of(job)
        detail["effects"] = [
            {
                "effect_key": row["effect_key"],
                "upstream": row["upstream"],
                "upstream_ref": row["upstream_ref"],
                "applied_at": row["applied_at"].isoformat(),
            }
            for row in self.store.ledger_rows(job_id=job_id)
        ]
        next_ask = self.store.next_ask(job_id)
        detail["reconcile"] = (
            None
            if next_ask is None
            else {
                "asks": next_ask.asks,
                "next_ask_at": next_ask.next_ask_at.isoformat(),
                "last_error": next_ask.last_error,
            }
        )
        return detail

    def cancel(self, job_id: int) -> Job:
        return self.store.cancel(job_id)

    def retry(self, job_id: int) -> Job:
        return self.store.retry(job_id)

    def answer_effect(self, job_id: int, status: str) -> Job:
        """An operator's answer for a job whose effect is unknown (``Store.answer_effect``)."""
        try:
            answer = EffectStatus(status)
        except ValueError:
            raise InvalidInput(
                f"an answer is one of {', '.join(s.value for s in EffectStatus)}, got {status!r}"
            ) from None
        job = self.store.answer_effect(job_id, answer)
        # Looks like reconcile's answer in the row: the log says who gave it.
        get_logger().info("effect_answered_by_operator", job_id=job_id, effect_status=answer.value)
        return job

    def replay(self, job_id: int, dry_run: bool = False) -> Job:
        """The new job, or (dry run) the job that would be replayed; refusals raise."""
        if dry_run:
            plan = self.store.plan_replay(job_id)
            if plan.refused:
                raise IllegalTransition(plan.refused)
            return plan.job
        return self.store.replay(job_id)

    def replay_all(
        self,
        job_type: str | None = None,
        error_class: str | None = None,
        limit: int | None = None,
        dry_run: bool = False,
    ) -> list[tuple[Job, Job | None, str | None]]:
        """(dead job, new job or None, refusal or None) for each matching dead job."""
        outcomes: list[tuple[Job, Job | None, str | None]] = []
        for job in self.store.replay_candidates(job_type, error_class, limit):
            if dry_run:
                outcomes.append((job, None, self.store.plan_replay(job.id).refused))
                continue
            try:
                outcomes.append((job, self.store.replay(job.id), None))
            except IllegalTransition as exc:
                outcomes.append((job, None, str(exc)))
        return outcomes
