"""syncbridge: a durable, plugin-based job engine for integration sync work."""

from syncbridge.errors import (
    NotFound,
    RetryableError,
    SyncBridgeError,
    TerminalError,
    UpstreamAuthError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationError,
)
from syncbridge.jobtypes import AppliedEffect, JobContext, JobType, Success

__version__ = "0.1.0"

__all__ = [
    "AppliedEffect",
    "JobContext",
    "JobType",
    "NotFound",
    "RetryableError",
    "Success",
    "SyncBridgeError",
    "TerminalError",
    "UpstreamAuthError",
    "UpstreamRateLimited",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "ValidationError",
    "__version__",
]
