"""The handler contract: what a job type's handler receives and what it returns.

A handler is a plain function ``handler(ctx: JobContext) -> Success | None``. It runs on a worker
thread with the job's log context bound. It may:

- return ``None`` or ``Success()``: the job succeeds;
- return ``Success(effect=AppliedEffect(...))``: the job succeeds and the engine writes the
  ledger row for that effect in the same transaction as the success (handlers never write to our
  database, so fencing also fences the ledger); effects applied on the way to it (an invoice
  job's upsert of the invoice's customer) go in ``also_applied`` and get their rows the same way;
- raise a :mod:`syncbridge.errors` error: retryable ones back off and retry, terminal ones fail
  the job at once; any other exception is retryable, recorded under its class name.

``ctx.cancel_requested`` turns true when an operator cancels the job, when the worker lost the
job's lease (or, as far as this process can tell, its lease ran out: a paused process must not
send effects for a job another worker may hold by now), or when the attempt passed its timeout;
a long handler should check it between upstream calls and stop (raising or returning; the
engine records the right outcome either way).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from syncbridge.errors import ValidationError

if TYPE_CHECKING:
    from syncbridge.upstream import UpstreamClient


# The ledger's columns (``db/schema.py``): what an effect's fields must fit.
EFFECT_FIELD_LIMITS = {"effect_key": 255, "upstream": 100, "upstream_ref": 255}


@dataclass(frozen=True)
class AppliedEffect:
    """An effect the handler applied upstream (or found already applied).

    Refused when made (a terminal :class:`ValidationError`, so the attempt fails with a clear
    error) if a field cannot be stored in the ledger: empty key or upstream, longer than its
    column, a NUL or a lone surrogate. Stored as it was, such an effect would make the whole
    batch of outcomes around it unwritable."""

    effect_key: str
    upstream: str
    upstream_ref: str | None = None

    def __post_init__(self) -> None:
        for name, limit in EFFECT_FIELD_LIMITS.items():
            value = getattr(self, name)
            if value is None and name == "upstream_ref":
                continue
            if not _fits_a_column(value, limit):
                raise ValidationError(
                    f"AppliedEffect.{name} must be text of 1 to {limit} characters without NUL "
                    f"or lone surrogates, got {str(value)[:80]!r}"
                    + (f" ({len(value)} characters)" if isinstance(value, str) else ""),
                    field=name,
                )


def _fits_a_column(value: object, limit: int) -> bool:
    """Non-empty text of at most ``limit`` characters that both databases can store: no NUL,
    no lone surrogate (no UTF-8 form)."""
    if not isinstance(value, str) or not 0 < len(value) <= limit or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Success:
    """The attempt succeeded. ``effect`` is the job's own effect (the one its reconciler looks
    for); ``also_applied`` holds those applied on the way to it. The ledger gets a row for each,
    written with the success."""

    effect: AppliedEffect | None = None
    also_applied: tuple[AppliedEffect, ...] = ()

    def __post_init__(self) -> None:
        # Any iterable a handler gives (a list, a generator) is kept as the tuple the rest of
        # the engine expects, made once, before it is checked.
        also_applied = tuple(self.also_applied)
        object.__setattr__(self, "also_applied", also_applied)
        own = () if self.effect is None else (self.effect,)
        for effect in (*own, *also_applied):
            if not isinstance(effect, AppliedEffect):
                # A plugin bug, raised after its effects were applied: retryable, so the job
                # ends dead with its outcome unknown and reconcile looks for its effect (a
                # terminal refusal would record "failed", a known outcome, and nobody would).
                # The retries resend the same requests under the same keys.
                raise TypeError(
                    f"Success effects must be AppliedEffect, got {type(effect).__name__}"
                )


HandlerResult = Success | None


def effect_key(lineage_id: int, effect_name: str, body: Any) -> str:
    """``Idempotency-Key`` for an effect: the same for every attempt, lease recovery and replay of
    one lineage that sends the same request; different when the request body differs."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(f"{lineage_id}\x1f{effect_name}\x1f{canonical}".encode()).hexdigest()
    return f"sb-{lineage_id}-{digest[:32]}"


_EFFECT_KEY = re.compile(r"sb-([1-9][0-9]*)-[0-9a-f]{32}")  # as effect_key writes it


def effect_key_lineage(key: str) -> int | None:
    """The lineage whose request an :func:`effect_key` key belongs to; None for a key made
    otherwise (a plugin's own, or an upstream's)."""
    match = _EFFECT_KEY.fullmatch(key)
    return int(match.group(1)) if match else None


def made_by_lineage(key: str, lineage_id: int) -> bool:
    """Whether an effect with this key is the given lineage's to record: its key is that
    lineage's, or not an :func:`effect_key` key at all (then nothing says otherwise). An effect
    another lineage's request made (found through an upstream's natural key) is recorded by that
    lineage's job, when it succeeds or is reconciled."""
    made_by = effect_key_lineage(key)
    return made_by is None or made_by == lineage_id


_STOP_EVENT_LOCK = threading.Lock()


@dataclass
class JobContext:
    job_id: int
    job_type: str
    entity_id: str
    payload: Mapping[str, Any]
    attempt: int
    correlation_id: str
    lineage_id: int
    worker_id: str
    deadline: datetime
    log: Any
    upstreams: Mapping[str, UpstreamClient] = field(default_factory=dict)
    # Made on first use: most attempts are never stopped nor wait, and an Event (a Condition
    # and two locks) cost about a tenth of the worker's time per no-op job.
    _stop: threading.Event | None = field(default=None, repr=False)
    stop_reason: str | None = None
    # ``time.monotonic()`` by which the job's lease runs out unless renewed: the worker sets it
    # from when it sent the claim or the last renewal that kept the lease.
    lease_held_until: float = math.inf

    @property
    def cancel_requested(self) -> bool:
        stop = self._stop
        if stop is not None and stop.is_set():
            return True
        if time.monotonic() < self.lease_held_until:
            return False
        # No renewal kept the lease in time (the process was paused, or the database away): the
        # job may be another worker's by now, and its effects theirs to make.
        self.request_stop("lease expired")
        return True

    def request_stop(self, reason: str) -> None:
        stop = self._stop_event()
        if not stop.is_set():
            self.stop_reason = reason
            stop.set()

    def wait_for_stop(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early when a stop is requested."""
        return self._stop_event().wait(timeout)

    def _stop_event(self) -> threading.Event:
        # The loop thread (stopping) and the handler's thread (waiting) may both come first.
        with _STOP_EVENT_LOCK:
            if self._stop is None:
                self._stop = threading.Event()
            return self._stop

    def effect_key(self, effect_name: str, body: Any) -> str:
        return effect_key(self.lineage_id, effect_name, body)

    def upstream(self, name: str) -> UpstreamClient:
        """The injected client for upstream ``name``, carrying this job's correlation id."""
        try:
            client = self.upstreams[name]
        except KeyError:
            raise LookupError(f"no upstream named {name!r} is configured") from None
        return client.bind(correlation_id=self.correlation_id)


Handler = Callable[[JobContext], HandlerResult]
# Asks the upstream whether an attempt that ended without a known outcome (lease lost, timeout,
# cancel during a call) applied its effect: the effect if it did, None if it did not. Raises
# (any error) when the upstream cannot tell now; reconcile then tries again later.
Reconciler = Callable[[JobContext], AppliedEffect | None]


@dataclass(frozen=True)
class JobType:
    """A job type registered by a plugin."""

    name: str
    handler: Handler
    description: str = ""
    timeout_seconds: float | None = None
    max_retries: int | None = None
    reconcile: Reconciler | None = None
    plugin: str = field(default="", compare=False)
