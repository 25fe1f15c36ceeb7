"""Structured logging: JSON lines (console rendering on a TTY), UTC timestamps, and whatever
context is bound with ``structlog.contextvars`` (the job's ids inside an attempt)."""

from __future__ import annotations

import logging
import select
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, BinaryIO, TextIO

import structlog
from structlog.typing import Processor

from syncbridge.json_codec import json_bytes, json_line

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


# The chain configure_logging built for JSON to a binary stream, as built: log_fields
# recognises it (a copy, so that a chain changed in place, as structlog.testing.capture_logs
# does, no longer matches) and renders what it would.
_json_chain: list[Processor] = []


def add_utc_time(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """The event's time as a datetime, which orjson formats in C: a third of the cost of
    ``TimeStamper(fmt="iso")``, which formats it in Python for every line."""
    event["timestamp"] = datetime.now(UTC)
    return event


# A write of at most this many bytes to a pipe is atomic (POSIX): several worker processes
# sharing one (a supervisor's) cannot interleave inside such a write, so held lines go out in
# chunks of whole lines no larger, as each line went out alone before.
ATOMIC_WRITE_BYTES = select.PIPE_BUF


class _HeldLines(threading.local):
    lines: list[tuple[LineLogger, bytes]] | None = None


_held = _HeldLines()


class LineLogger(structlog.BytesLogger):
    """structlog's ``BytesLogger``, but a thread may hold its lines and write them together
    (:func:`lines_written_together`)."""

    __slots__ = ()

    def msg(self, message: bytes) -> None:
        held = _held.lines
        if held is not None:
            held.append((self, message))
            return
        super().msg(message)

    def write_lines(self, lines: list[bytes]) -> None:
        super().msg(b"\n".join(lines))  # one write and flush, under the file's lock

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class LineLoggerFactory:
    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def __call__(self, *_args: Any) -> LineLogger:
        return LineLogger(self._file)


@contextmanager
def lines_written_together() -> Iterator[None]:
    """Lines logged on this thread inside the block go out together at its end, in writes of
    whole lines of up to :data:`ATOMIC_WRITE_BYTES` each: the worker, logging a hundred
    finished attempts, pays about ten system calls (each releases the GIL, so each cost a thread
    switch too) instead of a hundred. Only around work without I/O of its own, so that no line
    waits on anything slow, and a crash loses only lines about outcomes not recorded yet. Lines
    of other threads are not held (they may come out first); lines to a text stream (the
    console, a test's ``StringIO``) are written at once as before."""
    if _held.lines is not None:  # nested: the outer block writes
        yield
        return
    held: list[tuple[LineLogger, bytes]] = []
    _held.lines = held
    try:
        yield
    finally:
        _held.lines = None
        _write_held(held)


def _write_held(held: list[tuple[LineLogger, bytes]]) -> None:
    """In order, each line through its own logger (a reconfiguration inside the block may have
    changed the file), in chunks of whole lines of up to ``ATOMIC_WRITE_BYTES``."""
    chunk: list[bytes] = []
    size = 0
    writer: LineLogger | None = None
    for logger, line in held:
        if chunk and (logger is not writer or size + len(line) + 1 > ATOMIC_WRITE_BYTES):
            assert writer is not None
            writer.write_lines(chunk)
            chunk, size = [], 0
        writer = logger
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        assert writer is not None
        writer.write_lines(chunk)


def configure_logging(
    log_format: str | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    stream = stream or sys.stderr
    if log_format is None:
        log_format = "console" if stream.isatty() else "json"
    common: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    logger_factory: Any
    processors: list[Processor]
    if log_format == "console":
        processors = [
            *common,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=stream.isatty()),
        ]
        logger_factory = structlog.PrintLoggerFactory(stream)
    else:
        # The binary layer only under a UTF-8 text layer, the encoding orjson writes.
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        binary = getattr(stream, "buffer", None) if encoding == "utf8" else None
        renderer = structlog.processors.JSONRenderer(
            serializer=json_line if binary is None else json_bytes
        )
        processors = [*common, add_utc_time, structlog.processors.format_exc_info, renderer]
        global _json_chain
        _json_chain = list(processors) if binary is not None else []
        if binary is None:
            logger_factory = structlog.WriteLoggerFactory(stream)
        else:
            # Straight to the binary layer: no decode and re-encode per line. The text layer
            # is flushed first so that nothing written through it comes out after these lines;
            # text written through it later comes out in order only if it is line-buffered
            # (stderr is): log through structlog, not around it.
            stream.flush()
            logger_factory = LineLoggerFactory(binary)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=logger_factory,
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> Any:
    return structlog.get_logger("syncbridge").bind(**context)


def log_fields(log: Any, level: str, event: str, fields: dict[str, Any]) -> None:
    """``getattr(log, level)(event, **fields)``, for the worker's line per attempt.

    Where ``log`` runs the JSON chain :func:`configure_logging` built (the worker's case), the
    line is rendered here exactly as that chain renders it (same keys, same order, same bytes:
    a test compares them) and handed to the same logger: about half the cost, without
    structlog's dispatch, the keywords spread and gathered again, and five processor calls.
    Any other chain (the console's, a test's capture, one changed in place) goes through
    structlog as before."""
    if not log.is_enabled_for(LEVELS[level]):
        return  # as the filtering logger's method for that level does (the per-job debug lines)
    logger = log._logger
    if log._processors != _json_chain or type(logger) is not LineLogger or "event" in fields:
        getattr(log, level)(event, **fields)  # ("event" among the fields: structlog refuses)
        return
    line = log._context.copy()
    line.update(fields)
    line["event"] = event
    structlog.contextvars.merge_contextvars(logger, level, line)
    if "exc_info" in line:  # bound or passed: format_exc_info's work
        getattr(log, level)(event, **fields)
        return
    line["level"] = level
    add_utc_time(logger, level, line)
    logger.msg(log._processors[-1](logger, level, line))  # the chain's own renderer
