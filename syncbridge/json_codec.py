"""JSON by orjson where it can, the standard library where orjson refuses: for the log line
written and the payload read once per attempt, where the standard library's cost shows."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson


def json_bytes(obj: Any, default: Callable[[Any], Any] | None = None, **_: Any) -> bytes:
    """One event as JSON, by orjson: a third of the standard library's cost per line, which the
    worker pays once per attempt. Times come out as ISO 8601, UTC as ``Z``. What orjson refuses
    (a lone surrogate from hostile input, an integer past 64 bits) is written by
    :func:`json.dumps` instead, so no event is dropped."""
    try:
        return orjson.dumps(obj, default=default, option=orjson.OPT_UTC_Z)
    except TypeError:
        return json.dumps(obj, default=_times_then(default)).encode()


def json_line(obj: Any, default: Callable[[Any], Any] | None = None, **_: Any) -> str:
    """:func:`json_bytes` as text, for streams without a binary layer (``io.StringIO``)."""
    return json_bytes(obj, default).decode()


def json_loads(data: str | bytes | bytearray | memoryview) -> Any:
    """JSON text to Python, by orjson (a few times faster than :func:`json.loads` on the small
    payloads every claimed job carries). orjson reads an integer past 64 bits as a float, losing
    digits, so text with a run of 19 digits or more goes to the standard library, as does what
    orjson refuses (an escaped lone surrogate, ``NaN``)."""
    long_number = _LONG_DIGITS_TEXT if isinstance(data, str) else _LONG_DIGITS
    if long_number.search(data) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(bytes(data) if isinstance(data, memoryview) else data)


# 19 digits: every integer orjson keeps exact (64 bits) has at most 20, the 20-digit ones are
# rare, and a float or a string that matches only costs the slower reader.
_LONG_DIGITS = re.compile(rb"\d{19}")
_LONG_DIGITS_TEXT = re.compile(r"\d{19}")


def _times_then(default: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    def encode(value: Any) -> Any:
        if isinstance(value, datetime):  # as orjson writes them
            return value.isoformat().replace("+00:00", "Z")
        if default is None:
            raise TypeError(f"{type(value).__name__} is not JSON serializable")
        return default(value)

    return encode
