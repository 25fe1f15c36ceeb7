"""Who may change things.

- **API**: every mutating ``/api/`` call needs ``Authorization: Bearer <admin token>``, checked
  (with :func:`secrets.compare_digest`) by the middleware before routing, so a refused request
  never reaches a handler or even has its body parsed. Reads are open, as the contract says.
- **Admin UI**: a browser holds a session cookie (``HttpOnly``, ``SameSite=Strict``; ``Secure``
  over HTTPS) instead of the token. A session starts from a one-time login code (the URL
  ``serve`` prints) or from the admin token typed into the login form. Sessions live in this
  process's memory: a restart logs everyone out, and ``serve`` prints a new login URL.
- **CSRF**: each session has its own random CSRF token; every UI form carries it in a hidden
  field and every UI ``POST`` must present it (a session-bound synchroniser token). A request
  whose ``Origin`` names another site is refused as well. ``Referrer-Policy: same-origin``
  keeps the login link out of other sites' logs while letting the browser send ``Origin``.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.requests import Request

from syncbridge.clock import Clock, ElapsedClock

SESSION_COOKIE = "syncbridge_session"
SESSION_TTL = timedelta(hours=12)
MAX_SESSIONS = 1000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token_matches(given: str | None, expected: str) -> bool:
    if not given:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 and ::1; anything else (``0.0.0.0`` included) is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Session:
    id: str
    csrf_token: str
    expires_at: datetime


class Sessions:
    """One-time login codes and the sessions they start; safe to share between threads."""

    def __init__(self, clock: Clock | None = None, ttl: timedelta = SESSION_TTL) -> None:
        self._clock = clock or ElapsedClock()
        self._ttl = ttl
        self._lock = threading.Lock()
        self._codes: set[str] = set()
        self._sessions: dict[str, Session] = {}

    def mint_login_code(self) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes.add(code)
        return code

    def redeem(self, code: str) -> Session | None:
        """A new session for a login code never used before; the code is spent."""
        with self._lock:
            match = next((c for c in self._codes if token_matches(code, c)), None)
            if match is None:
                return None
            self._codes.discard(match)
        return self.start()

    def start(self) -> Session:
        now = self._clock.now()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + self._ttl)
        with self._lock:
            live = {k: s for k, s in self._sessions.items() if s.expires_at > now}
            if len(live) >= MAX_SESSIONS:  # drop the oldest rather than grow without bound
                live.pop(min(live, key=lambda k: live[k].expires_at))
            live[session.id] = session
            self._sessions = live
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or session.expires_at <= self._clock.now():
            return None
        return session

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)


def session_of(request: Request, sessions: Sessions) -> Session | None:
    return sessions.get(request.cookies.get(SESSION_COOKIE))


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin. No ``Origin`` (or
    the opaque ``null`` some privacy settings send) proves nothing either way: the CSRF token
    decides then."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return origin.split("://", 1)[-1] == request.headers.get("host", "")
