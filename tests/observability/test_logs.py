"""Logs: JSON lines with UTC timestamps, level and event; worker lifecycle events once each."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

from syncbridge.clock import FakeClock
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.logs import (
    LineLoggerFactory,
    configure_logging,
    get_logger,
    lines_written_together,
    log_fields,
)
from syncbridge.metrics import Metrics, WorkerMetrics
from syncbridge.models import EnqueueRequest
from syncbridge.worker import Worker
from tests.conftest import truncate
from tests.helpers import fast_settings, registry_with

JOB_CONTEXT = ("job_id", "job_type", "entity_id", "attempt", "correlation_id")


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_carry_utc_timestamp_level_event_and_context(restore_structlog: None) -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    with structlog.contextvars.bound_contextvars(job_id=7, correlation_id="c-1"):
        get_logger(worker_id="w1").info("attempt_finished", outcome="succeeded", duration_ms=1.5)
    get_logger().debug("too_quiet")
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "attempt_finished" and record["level"] == "info"
    assert record["timestamp"].endswith("Z")  # ISO 8601 in UTC
    assert record | {"timestamp": None} == {
        "event": "attempt_finished",
        "level": "info",
        "timestamp": None,
        "job_id": 7,
        "correlation_id": "c-1",
        "worker_id": "w1",
        "outcome": "succeeded",
        "duration_ms": 1.5,
    }


def test_console_rendering_on_a_tty(restore_structlog: None) -> None:
    stream = Terminal()
    configure_logging(None, "info", stream)
    get_logger().info("hello", n=1)
    text = stream.getvalue()
    assert "hello" in text and not text.lstrip().startswith("{")


def test_worker_lifecycle_is_logged_once_each_with_counts(
    engine: Engine, database_url: str
) -> None:
    """Many polls happen during a database outage and around a rescue; each lifecycle event is
    still one line, with counts."""
    truncate(engine)
    clock = FakeClock()
    setup = Store(engine, clock)
    for n in range(2):
        setup.enqueue(EnqueueRequest("noop", f"ent-orphan-{n}", {}, 3))
    assert len(setup.claim("ghost", ["noop"], 2, 5)) == 2  # a worker that died holding two
    flaky = setup.enqueue(
        EnqueueRequest("noop", "ent-flaky", {"fail": "retryable", "fail_attempts": 2}, 3)
    ).job
    clock.advance(60)

    own_engine = make_engine(database_url)
    down_until = time.monotonic() + 0.4

    @event.listens_for(own_engine, "before_cursor_execute")
    def unreachable(*_args: Any) -> None:
        if time.monotonic() < down_until:
            raise OperationalError("statement", {}, ConnectionError("database unreachable"))

    metrics = Metrics()
    try:
        worker = Worker(
            Store(own_engine, clock),
            registry_with(),
            fast_settings(),
            concurrency=4,
            burst=True,
            on_event=WorkerMetrics(metrics).on_event,
        )
        with structlog.testing.capture_logs() as logs:
            worker.run()
    finally:
        own_engine.dispose()

    events = Counter(line["event"] for line in logs)
    for name in (
        "worker_started",
        "database_lost",
        "database_reconnected",
        "jobs_recovered",
        "worker_stopped",
    ):
        assert events[name] == 1, (name, events)
    by_event = {line["event"]: line for line in logs}
    assert by_event["jobs_recovered"]["count"] == 2
    assert by_event["jobs_recovered"]["by_state"] == {"pending": 2}
    assert by_event["database_reconnected"]["down_seconds"] >= 0.3
    stopped = by_event["worker_stopped"]
    assert (stopped["claimed"], stopped["completed"], stopped["rescued"]) == (5, 5, 2)
    finished = [line for line in logs if line["event"] == "attempt_finished"]
    assert len(finished) == 5  # flaky 3, the two orphans once each
    for line in finished:
        assert all(key in line for key in JOB_CONTEXT) and line["log_level"] == "info"
        assert {"outcome", "duration_ms", "error_class"} <= set(line)
    assert [line["outcome"] for line in finished if line["job_id"] == flaky.id] == [
        "error",
        "error",
        "succeeded",
    ]
    assert metrics.registry.get_sample_value("syncbridge_database_outages_total") == 1


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


@pytest.mark.parametrize(
    "value",
    [
        "\ud800 lone surrogate",  # valid in a Python str and in a JSON \\u escape, not in UTF-8
        'tab\t quote" backslash\\ nul\x00 emoji \U0001f600 rtl \u202e',
        2**70,  # past orjson's 64 bits
        Opaque(),  # no JSON form: written as its repr
        {"nested": ["list", 1.5, None, True]},
    ],
    ids=["surrogate", "control-and-quotes", "big-int", "opaque-object", "nested"],
)
def test_every_event_is_one_parseable_json_line_whatever_the_values(
    restore_structlog: None, value: object
) -> None:
    """Hostile text in an entity id must not cost the line (or the worker): values the fast
    serializer refuses are written by the standard library's."""
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    get_logger(worker_id="w1").info("attempt_finished", entity_id=value, job_id=1)
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    expected = repr(value) if isinstance(value, Opaque) else value
    assert record["entity_id"] == expected and record["job_id"] == 1


def test_lines_to_a_file_go_through_its_binary_layer_in_order(
    restore_structlog: None, tmp_path: Any
) -> None:
    """A real file (stderr, the demo's log) is written bytes-first; what was written through its
    text layer before comes out before the lines, and every line parses, times in UTC."""
    path = tmp_path / "worker.log"
    with path.open("w") as stream:
        stream.write("before\n")
        configure_logging("json", "info", stream)
        log = get_logger(worker_id="w1")
        log.info("first", n=1)
        log.info("hostile", entity_id="\udc80", at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    assert isinstance(structlog.get_config()["logger_factory"], LineLoggerFactory)
    lines = path.read_text().splitlines()
    assert lines[0] == "before"
    first, hostile = (json.loads(line) for line in lines[1:])
    assert first["event"] == "first" and first["n"] == 1
    # The fallback serializer writes times as orjson does.
    assert hostile["entity_id"] == "\udc80" and hostile["at"] == "2026-01-02T03:04:05.000006Z"
    for record in (first, hostile):
        stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
        assert record["timestamp"].endswith("Z") and stamp.utcoffset() == timedelta(0)


class CountingFile(io.BytesIO):
    """A binary file that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.sizes: list[int] = []
        self.pieces: list[bytes] = []

    def write(self, data: Any) -> int:
        self.writes += 1
        self.sizes.append(len(data))
        self.pieces.append(bytes(data))
        return super().write(data)


def counting_stream() -> tuple[io.TextIOWrapper, CountingFile]:
    binary = CountingFile()
    return io.TextIOWrapper(binary, encoding="utf-8"), binary  # type: ignore[arg-type]


def test_lines_written_together_go_out_in_one_write_at_the_end_in_order(
    restore_structlog: None,
) -> None:
    """The worker logs a tick's finished attempts inside this block: one write, not one a line,
    and nothing held past the block's end, even when it ends by an exception."""
    stream, binary = counting_stream()
    configure_logging("json", "info", stream)
    log = get_logger(worker_id="w1")
    with pytest.raises(RuntimeError), lines_written_together():
        for n in range(5):
            log.info("attempt_finished", n=n)
            with lines_written_together():  # nested: the outer block writes
                log.warning("inner", n=n)
        assert binary.writes == 0 and binary.getvalue() == b""
        raise RuntimeError("the tick failed")
    assert binary.writes == 1
    records = [json.loads(line) for line in binary.getvalue().splitlines()]
    assert [(r["event"], r["n"]) for r in records] == [
        (event, n) for n in range(5) for event in ("attempt_finished", "inner")
    ]
    log.info("after")  # outside the block: written at once, as before
    assert binary.writes == 2 and json.loads(binary.getvalue().splitlines()[-1])["event"] == "after"


def test_held_lines_go_out_in_whole_line_writes_small_enough_to_stay_atomic_on_a_pipe(
    restore_structlog: None,
) -> None:
    """Several worker processes may share one pipe (a supervisor's): a write of at most
    PIPE_BUF bytes is atomic there, so no chunk may be larger or end inside a line."""
    from syncbridge.logs import ATOMIC_WRITE_BYTES

    stream, binary = counting_stream()
    configure_logging("json", "info", stream)
    log = get_logger(worker_id="w1")
    with lines_written_together():
        for n in range(100):
            log.info("attempt_finished", n=n, entity_id="e" * 250)
    assert 1 < binary.writes < 100 and max(binary.sizes) <= ATOMIC_WRITE_BYTES
    assert all(piece.endswith(b"\n") for piece in binary.pieces)
    assert [json.loads(line)["n"] for line in binary.getvalue().splitlines()] == list(range(100))


def test_held_lines_follow_their_own_logger_when_logging_is_reconfigured_inside(
    restore_structlog: None,
) -> None:
    first_stream, first = counting_stream()
    second_stream, second = counting_stream()
    configure_logging("json", "info", first_stream)
    with lines_written_together():
        get_logger().info("to_first")
        configure_logging("json", "info", second_stream)
        get_logger().info("to_second")
    assert [json.loads(x)["event"] for x in first.getvalue().splitlines()] == ["to_first"]
    assert [json.loads(x)["event"] for x in second.getvalue().splitlines()] == ["to_second"]


def test_lines_of_other_threads_are_not_held(restore_structlog: None) -> None:
    import threading

    stream, binary = counting_stream()
    configure_logging("json", "info", stream)
    log = get_logger()
    with lines_written_together():
        log.info("held")
        other = threading.Thread(target=lambda: log.info("handler_line"))
        other.start()
        other.join()
        assert [json.loads(line)["event"] for line in binary.getvalue().splitlines()] == [
            "handler_line"
        ]
    assert json.loads(binary.getvalue().splitlines()[-1])["event"] == "held"


def test_lines_to_a_text_stream_are_not_held(restore_structlog: None) -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    with lines_written_together():
        get_logger().info("at_once")
        assert json.loads(stream.getvalue())["event"] == "at_once"


def test_json_loads_reads_what_orjson_refuses() -> None:
    from syncbridge.json_codec import json_loads

    assert json_loads(b'{"big": 123456789012345678901234567890}') == {
        "big": 123456789012345678901234567890
    }
    assert json_loads(memoryview(b'["\\ud800", NaN]'))[0] == "\ud800"
    for text in ("[-123456789012345678901]", '{"id": "1234567890123456789"}', "[0.1, 2.5e-3]"):
        for form in (text, text.encode()):
            value = json_loads(form)
            assert value == json.loads(text) and type(value) is type(json.loads(text))
    assert type(json_loads(b"[18446744073709551617]")[0]) is int
    with pytest.raises(ValueError):
        json_loads(b"{not json")


def test_a_stream_in_another_encoding_is_written_as_text(
    restore_structlog: None, tmp_path: Any
) -> None:
    """orjson writes UTF-8: a stream opened in another encoding gets its lines through its text
    layer, which encodes them as it was told to."""
    path = tmp_path / "latin.log"
    with path.open("w", encoding="latin-1") as stream:
        configure_logging("json", "info", stream)
        get_logger().info("café", entity_id="ünï")
    assert not isinstance(structlog.get_config()["logger_factory"], structlog.BytesLoggerFactory)
    record = json.loads(path.read_text(encoding="latin-1"))
    assert record["event"] == "café" and record["entity_id"] == "ünï"


class FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC)


WORKER_LINE_FIELDS: list[dict[str, Any]] = [
    {
        "job_id": 12,
        "job_type": "noop",
        "entity_id": "e-1",
        "attempt": 2,
        "correlation_id": "c-12",
        "outcome": "succeeded",
        "duration_ms": 0.125,
        "error_class": None,
        "error_message": None,
    },
    {"entity_id": "\ud800 lone surrogate", "job_id": 2**70, "detail": Opaque()},
    {"entity_id": 'tab\t quote" nul\x00 rtl \u202e', "nested": {"a": [1.5, None, True]}},
    {"worker_id": "a field named like the bound context", "job_id": 3},
    {"job_id": 4, "exc_info": ValueError("with a traceback's place")},
]


def lines_both_ways(level: str, fields: dict[str, Any], read: Any) -> tuple[Any, Any]:
    """What ``log.<level>(**fields)`` writes and what ``log_fields`` writes, each alone, with
    the job's context bound as a handler's thread has it."""
    log = get_logger(worker_id="w1")
    written = []
    for write in (
        lambda: getattr(log, level)("attempt_finished", **fields),
        lambda: log_fields(log, level, "attempt_finished", dict(fields)),
    ):
        with structlog.contextvars.bound_contextvars(job_id=99, correlation_id="bound"):
            write()
        written.append(read())
    return written[0], written[1]


@pytest.mark.parametrize("fields", WORKER_LINE_FIELDS, ids=lambda f: ",".join(f)[:30])
@pytest.mark.parametrize("level", ["info", "warning", "debug"])
def test_log_fields_writes_the_bytes_structlog_writes_on_the_worker_path(
    restore_structlog: None, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], level: str
) -> None:
    """The worker's per-attempt line skips structlog's dispatch (``log_fields``): on the JSON
    chain to a binary stream the line must be the one structlog writes, byte for byte (same
    keys, order, fallbacks for hostile values, context precedence), and a level the logger
    filters out writes nothing either way."""
    monkeypatch.setattr("syncbridge.logs.datetime", FrozenDatetime)
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    configure_logging("json", "info", stream)

    def read() -> bytes:
        value = raw.getvalue()
        raw.seek(0)
        raw.truncate()
        return value

    through_structlog, direct = lines_both_ways(level, fields, read)
    assert direct == through_structlog
    assert (direct == b"") == (level == "debug")


@pytest.mark.parametrize("where", ["bound", "contextvars"])
@pytest.mark.parametrize("exc_info", [ValueError("boom"), False, True])
def test_log_fields_writes_what_structlog_writes_with_exc_info_in_the_context(
    restore_structlog: None, monkeypatch: pytest.MonkeyPatch, where: str, exc_info: object
) -> None:
    """``exc_info`` bound on the logger or in the context variables is format_exc_info's
    business (rendered as ``exception``, or dropped when false), not a field to copy."""
    monkeypatch.setattr("syncbridge.logs.datetime", FrozenDatetime)
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    configure_logging("json", "info", stream)
    log = get_logger(worker_id="w1")
    if where == "bound":
        log = log.bind(exc_info=exc_info)
    lines = []
    for write in (
        lambda: log.info("attempt_finished", job_id=1),
        lambda: log_fields(log, "info", "attempt_finished", {"job_id": 1}),
    ):
        if where == "contextvars":
            with structlog.contextvars.bound_contextvars(exc_info=exc_info):
                write()
        else:
            write()
        lines.append(raw.getvalue())
        raw.seek(0)
        raw.truncate()
    assert lines[0] == lines[1] and b"exc_info" not in lines[1]


def test_log_fields_skips_structlog_dispatch_only_on_the_chain_it_knows(
    restore_structlog: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the JSON chain to bytes the line is rendered without structlog's per-call processing;
    on a text stream, or once the chain is changed in place (``capture_logs``), it goes through
    structlog and lands where structlog sends it."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")  # kept: collected, it closes ``raw``
    configure_logging("json", "info", stream)
    log = get_logger(worker_id="w1")

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("went through structlog's dispatch")

    with monkeypatch.context() as patched:
        patched.setattr(type(log), "_process_event", refuse)
        log_fields(log, "info", "direct", {"job_id": 1})
    assert json.loads(raw.getvalue())["event"] == "direct"

    with structlog.testing.capture_logs() as captured:
        log_fields(log, "info", "captured", {"job_id": 2})
    assert captured == [{"event": "captured", "job_id": 2, "log_level": "info", "worker_id": "w1"}]

    text = io.StringIO()
    configure_logging("json", "info", text)
    monkeypatch.setattr("syncbridge.logs.datetime", FrozenDatetime)
    through_structlog, direct = lines_both_ways("info", WORKER_LINE_FIELDS[0], text.getvalue)
    assert direct == through_structlog + through_structlog  # the StringIO keeps both lines
