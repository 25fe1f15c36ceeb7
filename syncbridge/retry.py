"""Retry timing. The curve is tenacity's; this module only picks it and applies Retry-After.

Delay before retry k (k = 1 after the first failed attempt) is ``base * 2^(k-1)`` with *equal
jitter*: half fixed, half uniformly random, so retries of many jobs that failed together spread
out (a 503 storm does not come back as one wave) while no retry comes back instantly. Capped.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

from tenacity import wait_exponential, wait_random_exponential

RETRY_AFTER_CAP_SECONDS = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 2.0
    cap_seconds: float = 3600.0

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        half_base = self.base_seconds / 2
        half_cap = self.cap_seconds / 2
        wait = wait_exponential(multiplier=half_base, max=half_cap) + wait_random_exponential(
            multiplier=half_base, max=half_cap
        )
        # tenacity's wait strategies read only ``attempt_number`` from the retry state.
        state = cast(Any, SimpleNamespace(attempt_number=max(1, retry_number)))
        delay = float(wait(state)) if self.base_seconds > 0 else 0.0
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, RETRY_AFTER_CAP_SECONDS))
        return delay
