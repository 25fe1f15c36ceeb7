"""Online guessing of the admin token or of a login code, throttled per client address.

Every way in that checks a secret (a mutating ``/api/`` call's bearer token, the UI login form,
a one-time login link) goes through :meth:`FailedLogins.check`. A client address that got
``limit`` wrong answers within ``window`` is refused (429, ``Retry-After``) until the oldest of
them is older than the window, and while refused its guesses are not even compared, the right
one included: otherwise the lock-out would only slow guessing down, not stop it. A right answer
clears the address's record. A request that presents no secret at all is not a guess and is not
counted.

The check, the comparison and the record happen under one lock, so fifty wrong guesses sent at
once from one address get ``limit`` comparisons, not fifty. The record lives in this process's
memory, like the UI sessions (``auth.py``): a restart forgets it, and behind a reverse proxy the
address is the proxy's unless uvicorn is told to trust its forwarding headers.

A small hand-written counter rather than a rate-limiting library: what is limited is wrong
answers, not requests, the comparison must run inside the same critical section, and the
window must follow the injected clock so that tests move time instead of sleeping.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from math import ceil
from typing import NamedTuple

from syncbridge.clock import Clock, SystemClock
from syncbridge.logs import get_logger

MAX_FAILED_LOGINS = 10
FAILED_LOGIN_WINDOW = timedelta(minutes=1)
# Addresses remembered at once; past this the one whose last failure is oldest is forgotten, so
# a flood of addresses cannot grow the record without bound.
MAX_CLIENTS = 10_000


class Verdict(NamedTuple):
    ok: bool
    retry_after: int | None = None  # seconds; set when the address is locked out (not compared)

    @property
    def throttled(self) -> bool:
        return self.retry_after is not None


class FailedLogins:
    """Wrong answers per client address within a sliding window; safe to share between threads."""

    def __init__(
        self,
        clock: Clock | None = None,
        limit: int = MAX_FAILED_LOGINS,
        window: timedelta = FAILED_LOGIN_WINDOW,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._clock = clock or SystemClock()
        self._limit = limit
        self._window = window
        self._max_clients = max_clients
        self._lock = threading.Lock()
        self._failures: dict[str, deque[datetime]] = {}

    def check(self, client: str, verify: Callable[[], bool]) -> Verdict:
        """``verify()``'s answer for ``client``, or a refusal without calling it while the
        address is locked out; a wrong answer is recorded, a right one clears the record."""
        with self._lock:
            now = self._clock.now()
            failures = self._recent(client, now)
            if failures is not None and len(failures) >= self._limit:
                waited = (failures[0] + self._window - now).total_seconds()
                return Verdict(ok=False, retry_after=max(1, ceil(waited)))
            if verify():
                self._failures.pop(client, None)
                return Verdict(ok=True)
            self._record(client, now)
        return Verdict(ok=False)

    def _recent(self, client: str, now: datetime) -> deque[datetime] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures

    def _record(self, client: str, now: datetime) -> None:
        failures = self._failures.pop(client, None) or deque()
        failures.append(now)
        self._failures[client] = failures  # re-inserted: the dict's order is by last failure
        if len(failures) == self._limit:
            get_logger().warning(
                "login_locked_out",
                client=client,
                failures=self._limit,
                window_seconds=self._window.total_seconds(),
            )
        while len(self._failures) > self._max_clients:
            del self._failures[next(iter(self._failures))]
