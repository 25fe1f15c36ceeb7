"""Bad input through the CLI, on SQLite and PostgreSQL: each case is refused with the documented
exit code and a one-line message, and none changes the database (compared before and after,
through ``jobs list --json`` and every row of every table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from syncbridge.config import Settings
from syncbridge.db.queries import Store
from syncbridge.errors import InvalidInput
from syncbridge.models import Completion, EnqueueRequest, ErrorSnapshot
from syncbridge.plugins import load_registry
from syncbridge.services import PAYLOAD_MAX_BYTES, Services
from syncbridge.states import AttemptOutcome
from tests.acceptance.test_cli import Cli, Result, dump, seed

UNKNOWN_ID = "987654321"


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    message: str  # the start of the ``error:`` line (exit 1), or a fragment of click's (exit 2)


CASES = {
    "payload not JSON": Case(
        ("enqueue", "noop", "bad", "--payload", '{"a":'), 1, "error: --payload is not valid JSON: "
    ),
    "payload a list": Case(
        ("enqueue", "noop", "bad", "--payload", "[1, 2]"),
        1,
        "error: --payload must be a JSON object",
    ),
    "payload NaN": Case(
        ("enqueue", "noop", "bad", "--payload", '{"a": NaN}'),
        1,
        "error: payload must be plain JSON (no NaN or Infinity)",
    ),
    "payload nested too deeply": Case(
        ("enqueue", "noop", "bad", "--payload", "[" * 5000),
        1,
        "error: --payload is nested too deeply",
    ),
    "unknown job type": Case(
        ("enqueue", "no-such-type", "bad"), 1, "error: unknown job type 'no-such-type'"
    ),
    "empty entity id": Case(("enqueue", "noop", ""), 1, "error: entity id must not be empty"),
    "10,000-character entity id": Case(
        ("enqueue", "noop", "x" * 10_000),
        1,
        "error: entity id is 10000 characters long; the limit is 255",
    ),
    "entity id with ESC": Case(
        ("enqueue", "noop", "a\x1b[31mred"), 1, "error: entity id must not contain control"
    ),
    "entity id with C1 CSI": Case(
        ("enqueue", "noop", "a\x9b31mred"), 1, "error: entity id must not contain control"
    ),
    "entity id not UTF-8": Case(
        # "\udcff" reaches the child as the byte 0xff: argv that is not UTF-8.
        ("enqueue", "noop", "a\udcff"),
        1,
        "error: entity id must be valid UTF-8 text",
    ),
    "unknown job id (show)": Case(
        ("jobs", "show", UNKNOWN_ID), 1, f"error: no job with id {UNKNOWN_ID}"
    ),
    "non-numeric job id": Case(("retry", "abc"), 2, "'abc' is not a valid integer"),
    "job id of 2^63": Case(("cancel", str(2**63)), 2, f"{2**63} is not in the range"),
    "run-at garbage": Case(
        ("enqueue", "noop", "bad", "--run-at", "tomorrow-ish"),
        1,
        "error: --run-at is not an ISO 8601 time: 'tomorrow-ish'",
    ),
    "run-at naive": Case(
        ("enqueue", "noop", "bad", "--run-at", "2030-01-01T00:00:00"),
        1,
        "error: run-at needs a time zone offset",
    ),
    "run-at beyond year 9999 in UTC": Case(
        ("enqueue", "noop", "bad", "--run-at", "9999-12-31T23:59:59-05:00"),
        1,
        "error: run-at 9999-12-31T23:59:59-05:00 is out of range",
    ),
    "max-retries -1": Case(
        ("enqueue", "noop", "bad", "--max-retries", "-1"), 2, "-1 is not in the range 0<=x<=1000"
    ),
    "prune age garbage": Case(("prune", "--older-than", "7x"), 2, "is not a duration like 7d"),
    "prune age NaN": Case(("prune", "--older-than", "nan"), 2, "must be a finite, non-negative"),
    "prune age infinite": Case(("prune", "--older-than", "infd"), 2, "must be a finite"),
    "prune age negative": Case(("prune", "--older-than", "-1d"), 2, "must be a finite"),
    "worker retention 0": Case(
        ("worker", "--burst", "--prune-older-than", "0"), 2, "must be longer than 0"
    ),
    "worker retention garbage": Case(
        ("worker", "--burst", "--prune-older-than", "soon"), 2, "is not a duration like 7d"
    ),
    # Ages that are finite but overflow a datetime: usage errors, not tracebacks.
    "prune age 1e300 seconds": Case(("prune", "--older-than", "1e300"), 2, "at most 100 years"),
    "prune age 1e10 days": Case(("prune", "--older-than", "1e10d"), 2, "at most 100 years"),
    "worker retention 10^8 weeks": Case(
        ("worker", "--burst", "--prune-older-than", "100000000w"), 2, "at most 100 years"
    ),
    "payload with a lone surrogate": Case(
        ("enqueue", "noop", "bad", "--payload", '{"a": "\\ud800"}'),
        1,
        "error: payload must be valid UTF-8 text (it holds a lone surrogate)",
    ),
    # Invisible characters that make two ids look alike or reorder the text around them.
    "entity id with a bidi override": Case(
        ("enqueue", "noop", "abc\u202etxt.exe"),
        1,
        "error: entity id must not contain invisible formatting characters (U+202E)",
    ),
    "entity id with a zero-width space": Case(
        ("enqueue", "noop", "c_10\u200b01"),
        1,
        "error: entity id must not contain invisible formatting characters (U+200B)",
    ),
    # Sent upstream as the X-Correlation-ID header: it must fit in one (printable ASCII).
    "correlation id not ASCII": Case(
        ("enqueue", "noop", "ok", "--correlation-id", "café-123"),
        1,
        "error: correlation id must be printable ASCII with no space at either end",
    ),
    "correlation id with a trailing space": Case(
        ("enqueue", "noop", "ok", "--correlation-id", "req-42 "),
        1,
        "error: correlation id must be printable ASCII with no space at either end",
    ),
    "correlation id over 200 characters": Case(
        ("enqueue", "noop", "ok", "--correlation-id", "c" * 201),
        1,
        "error: correlation id is 201 characters long; the limit is 200",
    ),
    "idempotency key with a line separator": Case(
        ("enqueue", "noop", "ok", "--idempotency-key", "k\u2028forged"),
        1,
        "error: idempotency key must not contain invisible formatting characters (U+2028)",
    ),
}

# ``enqueue --from-file`` inputs, written into the commands' directory. Every file starts with
# a good line, so "changes nothing" also shows that a bad line stores none of the others.
GOOD = '{"job_type": "noop", "entity_id": "from-file-good"}\n'
FILES = {
    "entity-null.jsonl": GOOD + '{"job_type": "noop", "entity_id": null}\n',
    "entity-number.jsonl": GOOD + '{"job_type": "noop", "entity_id": 12345}\n',
    "type-list.jsonl": GOOD + '{"job_type": ["noop"], "entity_id": "x"}\n',
    "no-entity.jsonl": GOOD + '{"job_type": "noop"}\n',
    "retries-string.jsonl": GOOD + '{"job_type": "noop", "entity_id": "x", "max_retries": "5"}\n',
    "retries-float.jsonl": GOOD + '{"job_type": "noop", "entity_id": "x", "max_retries": 2.5}\n',
    "retries-bool.jsonl": GOOD + '{"job_type": "noop", "entity_id": "x", "max_retries": true}\n',
    "key-number.jsonl": GOOD + '{"job_type": "noop", "entity_id": "x", "idempotency_key": 5}\n',
    "run-at-number.jsonl": GOOD + '{"job_type": "noop", "entity_id": "x", "run_at": 12345}\n',
    "surrogate.jsonl": GOOD
    + '{"job_type": "noop", "entity_id": "x", "payload": {"a": "\\udc80"}}\n',
    "deep.jsonl": GOOD
    + '{"job_type": "noop", "entity_id": "x", "payload": {"a": '
    + "[" * 100_000
    + "]" * 100_000
    + "}}\n",
    # The key belongs to a job seeded for another entity (different parameters).
    "key-owned.jsonl": GOOD
    + '{"job_type": "noop", "entity_id": "someone-else", "idempotency_key": "K-owned"}\n',
    # One key for two entities in one file (line 2 is blank and not counted as a request).
    "correlation-non-ascii.jsonl": GOOD
    + '{"job_type": "noop", "entity_id": "x", "correlation_id": "\u6ce8\u6587-42"}\n',
    "key-twice.jsonl": '{"job_type": "noop", "entity_id": "f-a", "idempotency_key": "K2"}\n'
    + "\n"
    + '{"job_type": "noop", "entity_id": "f-b", "idempotency_key": "K2"}\n',
}
_FILE_ERRORS = {
    "entity-null.jsonl": "line 2: entity id must be a string, not null",
    "entity-number.jsonl": "line 2: entity id must be a string, not a number",
    "type-list.jsonl": "line 2: job type must be a string, not an array",
    "no-entity.jsonl": "line 2: missing field(s) ['entity_id']",
    "retries-string.jsonl": "line 2: max retries must be an integer, not a string",
    "retries-float.jsonl": "line 2: max retries must be an integer, not a number",
    "retries-bool.jsonl": "line 2: max retries must be an integer, not a boolean",
    "key-number.jsonl": "line 2: idempotency key must be a string, not a number",
    "run-at-number.jsonl": "line 2: run_at must be an ISO 8601 string",
    "surrogate.jsonl": "line 2: payload must be valid UTF-8 text (it holds a lone surrogate)",
    "deep.jsonl": "line 2: the line is nested too deeply",
    "key-owned.jsonl": "line 2: idempotency key 'K-owned' already belongs to job ",
    "correlation-non-ascii.jsonl": "line 2: correlation id must be printable ASCII",
    "key-twice.jsonl": "line 3: idempotency key 'K2' was given earlier in the batch with "
    "different parameters; nothing was stored",
}
CASES |= {
    f"--from-file {name}": Case(("enqueue", "--from-file", name), 1, f"error: {message}")
    for name, message in _FILE_ERRORS.items()
}


@dataclass(frozen=True)
class Outcome:
    results: dict[str, Result]
    listed_before: Result
    listed_after: Result
    rows_before: object
    rows_after: object


@pytest.fixture(scope="module")
def outcome(engine: Engine, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """Every case, run concurrently on a migrated database (the ``engine`` fixture migrates it)
    that already holds a few jobs."""
    cli = Cli(database_url, tmp_path_factory.mktemp("bad-input"))
    for name, content in FILES.items():
        (cli.cwd / name).write_text(content, encoding="utf-8")
    seed(database_url, ("present-1", {"n": 1}), ("present-2", {}))
    seed(database_url, ("key-owner", {}), idempotency_key="K-owned")
    seed(database_url, ("bad", {}), run_at=datetime(2099, 1, 1, tzinfo=UTC))
    listing = ("jobs", "list", "--json", "--limit", "10000")
    rows_before, listed_before = dump(database_url), cli(*listing)
    results = cli.many(*[case.args for case in CASES.values()])
    rows_after, listed_after = dump(database_url), cli(*listing)
    return Outcome(
        dict(zip(CASES, results, strict=True)), listed_before, listed_after, rows_before, rows_after
    )


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_refused(outcome: Outcome, name: str) -> None:
    case, result = CASES[name], outcome.results[name]
    assert result.code == case.code, result
    assert result.out == ""
    if case.code == 1:
        assert result.error_line.startswith(case.message), result.error_line
    else:
        assert result.err.splitlines()[-1].startswith("Error: "), result.err
        assert case.message in result.err


def test_bad_input_changes_nothing(outcome: Outcome) -> None:
    assert outcome.listed_before.code == 0
    assert len(outcome.listed_before.json()["items"]) == 4
    assert outcome.listed_after.out == outcome.listed_before.out
    assert outcome.rows_after == outcome.rows_before


def test_nul_in_an_entity_id_is_refused(
    outcome: Outcome, engine: Engine, database_url: str
) -> None:
    # A NUL cannot travel in argv, so this goes to the layer the CLI and the API share.
    services = Services(Store(engine), load_registry(["noop"]), Settings())
    with pytest.raises(InvalidInput, match=r"^entity id must not contain control characters$"):
        services.enqueue("noop", "a\x00b")
    assert dump(database_url) == outcome.rows_after


def test_a_payload_over_the_limit_is_refused(
    outcome: Outcome, engine: Engine, database_url: str
) -> None:
    # Too long for argv: through the layer the CLI, the UI, files and the API share.
    services = Services(Store(engine), load_registry(["noop"]), Settings())
    big = {"blob": "x" * PAYLOAD_MAX_BYTES}
    with pytest.raises(InvalidInput, match=r"^payload is 1,048,588 bytes of JSON; the limit is "):
        services.enqueue("noop", "big", big)
    just_fits = {"blob": "x" * (PAYLOAD_MAX_BYTES - 12)}
    assert services.build_request("noop", "fits", just_fits).payload is just_fits
    assert dump(database_url) == outcome.rows_after


# What an upstream's error body could put into a stored error message: a terminal command
# (clear the screen), a carriage return and newline that forge a line, a bidi override.
FORGED = "boom\x1b[2J\x1b[H\r\nlast error: none (forged)\u202e"


def test_stored_text_is_printed_inert(
    outcome: Outcome, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    store = Store(engine)
    early = datetime(2000, 1, 1, tzinfo=UTC)  # due before every other job: the next claim
    job = store.enqueue(EnqueueRequest("noop", "printed", {}, 0, run_at=early)).job
    (claimed,) = store.claim("worker-print", ["noop"], 1, 60)
    assert claimed.id == job.id
    error = ErrorSnapshot("Upstream\x1b[31mError", FORGED, True, 500)
    done = Completion(job.id, claimed.attempt, "worker-print", AttemptOutcome.ERROR, error)
    store.complete([done])
    cli = Cli(database_url, tmp_path)
    for args in (("jobs", "show", str(job.id)), ("dlq", "list"), ("jobs", "list")):
        result = cli(*args)
        assert result.code == 0, result
        printed = result.out
        assert "\x1b" not in printed and "\r" not in printed and "\u202e" not in printed, args
        assert not any(line.startswith("last error: none") for line in printed.splitlines())
    shown = cli("jobs", "show", str(job.id)).out
    assert "last error: Upstream\\x1b[31mError: boom\\x1b[2J\\x1b[H\\r\\nlast error: none" in shown
    # --json is already inert (JSON escapes) and keeps the text exactly.
    detail = cli("jobs", "show", str(job.id), "--json").json()
    assert detail["last_error"]["message"] == FORGED
