"""Bad input through the CLI, on SQLite and PostgreSQL: each case is refused with the documented
exit code and a one-line message, and none changes the database (compared before and after,
through ``jobs list --json`` and every row of every table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from syncbridge.config import Settings
from syncbridge.db.queries import Store
from syncbridge.errors import InvalidInput
from syncbridge.plugins import load_registry
from syncbridge.services import Services
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
    seed(database_url, ("present-1", {"n": 1}), ("present-2", {}))
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
    assert len(outcome.listed_before.json()["items"]) == 3
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
