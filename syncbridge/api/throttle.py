"""Online guessing of the admin token or of a login code, throttled per client address.

Every way in that checks a secret (a mutating ``/api/`` call's bearer token, the UI login form,
a one-time login link) goes through :meth:`FailedLogins.check`. A client address that got
``limit`` wrong answers within ``window`` is refused (429, ``Retry-After``) until the oldest of
them is older than the window, and while refused its guesses are not even compared, the right
one included: otherwise the lock-out would only slow guessing down, not stop it. A right answer
does not clear the record (wrong answers only age out): several clients can share an address
(a proxy, NAT, loopback), and a right answer from one of them must not buy another ten guesses.
A request that presents no secret at all is not a guess and is not counted.

The key is the peer's IP address as the ASGI server reports it, normalised: an IPv6 address
counts as its /64 (one host usually holds a whole /64), and anything that is not an IP address
shares one bucket, so the record's keys are short and bounded whatever a client sends.

The check, the comparison and the record happen under one lock, so fifty wrong guesses sent at
once from one address get ``limit`` comparisons, not fifty. The record lives in this process's
memory, like the UI sessions (``auth.py``): a restart forgets it. Its window runs on elapsed
(monotonic) time, so setting the host's clock back does not lengthen a lock-out. The peer
address is the TCP peer's: ``syncbridge serve`` reads ``X-Forwarded-For`` only from the proxies
named in ``--forwarded-allow-ips`` (uvicorn's default trusts it from 127.0.0.1, which would let
any local client name its own address); behind a proxy not named there every client has its
address.

A small hand-written counter rather than a rate-limiting library: what is limited is wrong
answers, not requests, the comparison must run inside the same critical section, and the
window must follow the injected clock so that tests move time instead of sleeping.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from math import ceil
from typing import NamedTuple

from syncbridge.clock import Clock, ElapsedClock
from syncbridge.logs import get_logger

MAX_FAILED_LOGINS = 10
FAILED_LOGIN_WINDOW = timedelta(minutes=1)
# Addresses remembered at once; past this the one whose last failure is oldest is forgotten, so
# a flood of addresses cannot grow the record without bound.
MAX_CLIENTS = 10_000
NOT_AN_ADDRESS = "not-an-ip-address"


def client_key(host: str | None) -> str:
    """The record's key for a peer address (see the module's docstring)."""
    try:
        address = ipaddress.ip_address((host or "").strip("[]"))
    except ValueError:
        return NOT_AN_ADDRESS
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 host a.b.c.d
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


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
        self._clock = clock or ElapsedClock()
        self._limit = limit
        self._window = window
        self._max_clients = max_clients
        self._lock = threading.Lock()
        self._failures: dict[str, deque[datetime]] = {}

    def check(self, client: str | None, verify: Callable[[], bool]) -> Verdict:
        """``verify()``'s answer for the peer address ``client``, or a refusal without calling
        it while the address is locked out; a wrong answer is recorded."""
        key = client_key(client)
        with self._lock:
            now = self._clock.now()
            failures = self._recent(key, now)
            if failures is not None and len(failures) >= self._limit:
                waited = (failures[0] + self._window - now).total_seconds()
                return Verdict(ok=False, retry_after=max(1, ceil(waited)))
            if verify():
                return Verdict(ok=True)
            self._record(key, now)
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
