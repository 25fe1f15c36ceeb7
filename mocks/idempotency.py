"""Idempotency keys the way Stripe documents them.

A key is reserved atomically before the request executes; while it runs, the same key gets
"in progress"; once it has run, its first answer is replayed for the same request and refused
for a different one. Only requests that executed are remembered: a refused body or an injected
fault never becomes a key's answer. Keys expire after a TTL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DEFAULT_TTL_SECONDS = 24 * 60 * 60
MAX_KEY_LENGTH = 255  # Stripe's limit; a longer key is a client bug worth a 400


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


class Claim(StrEnum):
    RESERVED = "reserved"  # the caller now owns the key and must complete or release it
    IN_PROGRESS = "in_progress"  # another request with this key is executing
    REPLAY = "replay"  # executed before with the same request: answer `response`
    MISMATCH = "mismatch"  # executed or executing with a different request


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    response: StoredResponse | None = None


@dataclass
class _Entry:
    fingerprint: str
    created_at: float
    response: StoredResponse | None = None  # None while the request is executing


class IdempotencyStore:
    def __init__(
        self,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def claim(self, key: str, fingerprint: str) -> ClaimResult:
        """Reserve `key` for a request with `fingerprint`, or say why it cannot run."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry.created_at >= self.ttl_seconds:
                entry = None  # expired: from here on only natural keys prevent a duplicate
            if entry is None:
                self._entries[key] = _Entry(fingerprint, now)
                return ClaimResult(Claim.RESERVED)
            if entry.fingerprint != fingerprint:
                return ClaimResult(Claim.MISMATCH)
            if entry.response is None:
                return ClaimResult(Claim.IN_PROGRESS)
            return ClaimResult(Claim.REPLAY, entry.response)

    def complete(self, key: str, response: StoredResponse) -> None:
        """Remember the executed answer of a reserved key."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.response = response

    def release(self, key: str) -> None:
        """Forget a reservation whose request did not execute, so a retry can run it."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.response is None:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
