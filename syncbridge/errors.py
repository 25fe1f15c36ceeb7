"""The exception tree. One root, two branches; classification is data on the class.

::

    SyncBridgeError
    ├── RetryableError              (retryable = True: backoff, then retry)
    │   ├── UpstreamTimeout         timeout or connection error
    │   ├── UpstreamUnavailable     5xx, 409 "request in progress"
    │   └── UpstreamRateLimited     429; carries ``retry_after`` seconds
    └── TerminalError               (retryable = False: the job fails at once)
        ├── NotFound                404
        ├── ValidationError         400/422, or a record that fails validation
        └── UpstreamAuthError       401/403

An exception outside this tree raised by a handler is retryable and recorded under its own class
name (see ``executor.classify``). Engine-side refusals (illegal transitions, bad input) use
:class:`Refused`, which is never raised by a handler.
"""

from __future__ import annotations


class SyncBridgeError(Exception):
    """Root of every error a handler is expected to raise."""

    retryable: bool = True
    http_status: int | None = None

    def __init__(self, message: str = "", *, http_status: int | None = None) -> None:
        super().__init__(message)
        if http_status is not None:
            self.http_status = http_status


class RetryableError(SyncBridgeError):
    retryable = True


class TerminalError(SyncBridgeError):
    retryable = False


class UpstreamTimeout(RetryableError):
    pass


class UpstreamUnavailable(RetryableError):
    pass


class UpstreamRateLimited(RetryableError):
    def __init__(
        self, message: str = "", *, retry_after: float | None = None, http_status: int = 429
    ) -> None:
        super().__init__(message, http_status=http_status)
        self.retry_after = retry_after


class NotFound(TerminalError):
    pass


class ValidationError(TerminalError):
    def __init__(
        self, message: str = "", *, field: str | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(message, http_status=http_status)
        self.field = field


class UpstreamAuthError(TerminalError):
    pass


class Refused(Exception):
    """An operator request that the engine refuses (CLI exit 1, HTTP 409/404/422)."""

    status_code = 409


class UnknownJob(Refused):
    status_code = 404


class IllegalTransition(Refused):
    status_code = 409


class InvalidInput(Refused):
    status_code = 422


class InvalidBatchRequest(InvalidInput):
    """One request of a bulk enqueue refused, so the batch stored nothing; ``index`` is its
    position in the batch (0-based), for callers that number their input otherwise."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"request {index + 1}: {reason}")
        self.index = index
        self.reason = reason


class DatabaseNotReady(Exception):
    """The database is unreachable or its schema is not at head (CLI exit 3, HTTP 503)."""
