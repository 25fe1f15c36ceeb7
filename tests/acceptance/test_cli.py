"""The CLI as a user drives it: real ``python -m syncbridge`` processes on SQLite and PostgreSQL.

Exit codes: 0 ok; 1 refused (one ``error:`` line on stderr); 2 usage error; 3 database
unreachable or not migrated. Bulk set-up (twenty jobs to drain, say) goes through the same
``Services.enqueue`` the CLI calls, in-process, to keep the number of processes down; everything
under test is a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from syncbridge.config import Settings
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.db.schema import jobs, metadata
from syncbridge.jobtypes import AppliedEffect
from syncbridge.models import Completion, EnqueueRequest, ErrorSnapshot
from syncbridge.plugins import load_registry
from syncbridge.services import Services
from syncbridge.states import AttemptOutcome

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00:00$")
FUTURE = "2099-01-01T00:00:00+00:00"
UNREACHABLE_SQLITE = "sqlite:////nonexistent-syncbridge-dir/sub/jobs.db"
PARALLEL = 4


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def error_line(self) -> str:
        """The single stderr line of a refusal; fails unless there is exactly one."""
        lines = self.err.splitlines()
        assert len(lines) == 1, f"expected one stderr line from {self.args}: {self.err!r}"
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


@dataclass(frozen=True)
class Cli:
    """``syncbridge`` against one database, from a scratch directory (no stray config file)."""

    database_url: str
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def with_env(self, **extra: str) -> Cli:
        return replace(self, env=self.env | extra)

    def _environ(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCBRIDGE_")}
        return (
            base
            | {
                "SYNCBRIDGE_DATABASE_URL": self.database_url,
                "SYNCBRIDGE_LOG_FORMAT": "json",
                "PYTHONIOENCODING": "utf-8",
            }
            | self.env
        )

    def __call__(self, *args: str) -> Result:
        done = subprocess.run(
            [sys.executable, "-m", "syncbridge", *args],
            cwd=self.cwd,
            env=self._environ(),
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=120,
            check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return Result(tuple(args), done.returncode, done.stdout, done.stderr)

    def many(self, *commands: Sequence[str]) -> list[Result]:
        """Independent commands, run concurrently; results in the order given."""
        return parallel(*[(self, command) for command in commands])


def parallel(*calls: tuple[Cli, Sequence[str]]) -> list[Result]:
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(lambda call: call[0](*call[1]), calls))


def seed(database_url: str, *jobs: tuple[str, dict[str, Any]], **options: Any) -> list[int]:
    """Enqueue noop jobs ``(entity_id, payload)`` in-process; returns their ids."""
    engine = make_engine(database_url)
    try:
        # The default retry budget pinned, whatever SYNCBRIDGE_* this test process sees.
        settings = Settings(job_max_retries_default=3)
        services = Services(Store(engine), load_registry(["noop"]), settings)
        return [
            services.enqueue("noop", entity, payload, **options).job.id for entity, payload in jobs
        ]
    finally:
        engine.dispose()


def dump(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for "nothing changed" checks."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                table.name: [
                    tuple(row)
                    for row in conn.execute(select(table).order_by(*table.primary_key.columns))
                ]
                for table in metadata.sorted_tables
            }
    finally:
        engine.dispose()


def job_states(database_url: str) -> dict[int, tuple[str, int]]:
    """``{id: (state, attempt)}`` of every job, read directly."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(jobs.c.id, jobs.c.state, jobs.c.attempt)).all()
    finally:
        engine.dispose()
    return {row.id: (str(row.state), row.attempt) for row in rows}


def assert_times_rfc3339(document: dict[str, Any], *names: str) -> None:
    for name in names:
        value = document[name]
        assert isinstance(value, str) and RFC3339_UTC.match(value), (name, value)
        assert datetime.fromisoformat(value).utcoffset() is not None


@dataclass(frozen=True)
class Prepared:
    cli: Cli
    before_migrate: Result
    first_migrate: Result


@pytest.fixture(scope="module")
def prepared(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """The module's database: first used unmigrated, then migrated by the CLI."""
    cli = Cli(database_url, tmp_path_factory.mktemp("cli-cwd"))
    before = cli("jobs", "list")
    first = cli("migrate")
    assert first.code == 0, first
    return Prepared(cli, before, first)


@pytest.fixture
def cli(prepared: Prepared) -> Cli:
    return prepared.cli


# --- commands that never reach a database: run once, together --------------------------------


@dataclass(frozen=True)
class Offline:
    cwd: Path
    results: dict[str, Result]

    def __getitem__(self, name: str) -> Result:
        return self.results[name]


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Offline:
    """Backend-independent commands, run concurrently. The database URL points into a directory
    that does not exist, so a command that got as far as the store would exit 3."""
    cwd = tmp_path_factory.mktemp("offline")
    (cwd / "bad.toml").write_text("job_lease_seconds = [\n")
    lost = Cli(UNREACHABLE_SQLITE, cwd)
    refused_pg = Cli("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/x", cwd)
    calls: dict[str, tuple[Cli, Sequence[str]]] = {
        # exit 3
        "pg list": (refused_pg, ("jobs", "list")),
        "sqlite list": (lost, ("jobs", "list")),
        "sqlite migrate": (lost, ("migrate",)),
        # exit 2: usage
        "show abc": (lost, ("jobs", "show", "abc")),
        "enqueue no entity": (lost, ("enqueue", "noop")),
        "limit 0": (lost, ("jobs", "list", "--limit", "0")),
        "cursor 2^64": (lost, ("jobs", "list", "--cursor", str(2**64))),
        "replay nothing": (lost, ("replay",)),
        "lease grace 1e300": (lost, ("check", "--lease-grace", "1e300")),
        # every lease and attempt row stores it: refused before anything starts
        "worker id 201": (lost, ("worker", "--burst", "--worker-id", "w" * 201)),
        "worker id empty": (lost, ("worker", "--burst", "--worker-id", "")),
        "worker id NUL-ish": (lost, ("worker", "--burst", "--worker-id", "w\x1b[31m")),
        # exit 2: configuration
        "lease abc": (lost.with_env(SYNCBRIDGE_JOB_LEASE_SECONDS="abc"), ("jobs", "list")),
        "bad toml": (lost, ("--config", str(cwd / "bad.toml"), "jobs", "list")),
        "missing toml": (lost, ("--config", str(cwd / "missing.toml"), "jobs", "list")),
        # exit 0
        "plugins json": (lost, ("plugins", "list", "--json")),
    }
    results = parallel(*calls.values())
    return Offline(cwd, dict(zip(calls, results, strict=True)))


def test_unmigrated_database_exits_3_and_names_migrate(prepared: Prepared) -> None:
    result = prepared.before_migrate
    assert result.code == 3
    assert result.out == ""
    assert result.error_line == "error: database schema is not migrated: run `syncbridge migrate`"


def test_unreachable_database_exits_3(offline: Offline) -> None:
    pg = [offline["pg list"]]
    lite = [offline["sqlite list"], offline["sqlite migrate"]]
    for result in pg + lite:
        assert result.code == 3, result
        assert result.out == ""
        assert result.error_line.startswith("error: database unreachable at ")
    for result in pg:
        assert "127.0.0.1:1/x" in result.error_line
        assert "s3cret" not in result.err  # the password is never echoed
    for result in lite:
        assert "nonexistent-syncbridge-dir" in result.error_line
    assert not Path("/nonexistent-syncbridge-dir").exists()


USAGE = {
    "show abc": "'abc' is not a valid integer",
    "enqueue no entity": "ENTITY_ID",
    "limit 0": "'--limit': 0 is not in the range 1<=x<=10000",
    "cursor 2^64": f"'--cursor': {2**64} is not in the range",
    "replay nothing": "give a JOB_ID or --all",
    "lease grace 1e300": "'--lease-grace'",
    "worker id 201": "a worker id is 1 to 200 characters, got 201",
    "worker id empty": "a worker id is 1 to 200 characters, got 0",
    "worker id NUL-ish": "a worker id cannot hold control characters",
}


@pytest.mark.parametrize("name", USAGE)
def test_usage_errors_exit_2(offline: Offline, name: str) -> None:
    result = offline[name]
    assert result.code == 2, result
    assert result.out == ""
    assert result.err.splitlines()[-1].startswith("Error: "), result
    assert USAGE[name] in result.err


def test_bad_settings_exit_2_with_one_line_naming_the_setting(offline: Offline) -> None:
    lease, toml, missing = offline["lease abc"], offline["bad toml"], offline["missing toml"]
    for result in (lease, toml, missing):
        assert result.code == 2, result
        assert result.out == ""
    assert lease.error_line.startswith("error: invalid setting: SYNCBRIDGE_JOB_LEASE_SECONDS: ")
    assert lease.error_line.endswith("(got 'abc')")
    cwd = offline.cwd
    assert toml.error_line.startswith(f"error: config file {cwd / 'bad.toml'} is not valid TOML: ")
    assert missing.error_line == f"error: config file not found: {cwd / 'missing.toml'}"


def test_plugins_list_names_noop(offline: Offline) -> None:
    result = offline["plugins json"]
    assert result.code == 0, result
    document = result.json()
    assert document["next_cursor"] is None
    noop = {"plugin": "noop", "job_type": "noop", "description": "does nothing; for tests"}
    assert noop in document["items"]


# --- migrate and enqueue ----------------------------------------------------------------------


def test_migrate_twice_is_a_no_op(prepared: Prepared) -> None:
    again = prepared.cli("migrate")
    assert again.code == 0
    assert again.out == prepared.first_migrate.out
    assert again.out.startswith("schema at head (")


def test_enqueue_prints_the_id_and_an_active_duplicate_returns_it(cli: Cli) -> None:
    first = cli("enqueue", "noop", "dedup-1", "--run-at", FUTURE)
    assert first.code == 0, first
    job_id = int(first.out)
    plain, as_json = cli.many(
        ("enqueue", "noop", "dedup-1"), ("enqueue", "noop", "dedup-1", "--json")
    )
    assert plain.code == 0 and plain.out == f"{job_id}\n"
    assert plain.err == f"deduplicated: job {job_id} is pending\n"
    document = as_json.json()
    assert document["deduplicated"] is True
    assert (document["id"], document["entity_id"], document["state"]) == (
        job_id,
        "dedup-1",
        "pending",
    )
    assert document["next_run_at"] == FUTURE
    assert (document["payload"], document["attempt"], document["max_retries"]) == ({}, 0, 3)
    assert_times_rfc3339(document, "created_at", "updated_at", "next_run_at")


def test_run_at_with_an_offset_is_stored_in_utc_and_cancel_ends_a_pending_job(cli: Cli) -> None:
    created = cli("enqueue", "noop", "cancel-me", "--run-at", "2099-01-01T00:00:00+02:00", "--json")
    job = created.json()
    assert job["deduplicated"] is False
    assert job["next_run_at"] == "2098-12-31T22:00:00+00:00"
    cancelled = cli("cancel", str(job["id"]))
    assert (cancelled.code, cancelled.out) == (0, f"job {job['id']} is cancelled\n")
    assert job_states(cli.database_url)[job["id"]] == ("cancelled", 0)


# --- hostile but legal entity ids -------------------------------------------------------------

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "'; DROP TABLE jobs; --",
    "ユーザー🚀",
    "../../etc/passwd",
    "[red]markup[/red]",
]


def test_hostile_entity_ids_round_trip_and_print_literally(cli: Cli) -> None:
    enqueued = cli.many(*[("enqueue", "noop", e, "--run-at", FUTURE, "--json") for e in HOSTILE])
    ids = {}
    for entity, result in zip(HOSTILE, enqueued, strict=True):
        assert result.code == 0, result
        assert result.json()["entity_id"] == entity
        ids[entity] = result.json()["id"]
    markup = ids["[red]markup[/red]"]
    listed, table, shown_table, shown = cli.many(
        ("jobs", "list", "--json", "--limit", "10000"),
        ("jobs", "list", "--limit", "10000"),
        ("jobs", "show", str(markup)),
        ("jobs", "show", str(markup), "--json"),
    )
    by_id = {item["id"]: item["entity_id"] for item in listed.json()["items"]}
    for entity, job_id in ids.items():
        assert by_id[job_id] == entity
        assert entity in table.out  # literal: no markup interpreted, nothing escaped
    assert shown.json()["entity_id"] == "[red]markup[/red]"
    assert "[red]markup[/red]" in shown_table.out
    assert "\x1b" not in table.out + shown_table.out


# --- listing ----------------------------------------------------------------------------------


def test_jobs_list_pages_with_limit_and_cursor(cli: Cli) -> None:
    seed(cli.database_url, *[(f"page-{n}", {"n": n}) for n in range(5)])
    ids = sorted(job_states(cli.database_url), reverse=True)  # the listing is newest first
    first, second, last = cli.many(
        ("jobs", "list", "--json", "--limit", "2"),
        ("jobs", "list", "--json", "--limit", "2", "--cursor", str(ids[1])),
        ("jobs", "list", "--json", "--limit", "2", "--cursor", str(ids[-3])),
    )
    pages = [first.json(), second.json(), last.json()]
    assert [set(page) for page in pages] == [{"items", "next_cursor"}] * 3
    assert [[item["id"] for item in page["items"]] for page in pages] == [
        ids[:2],
        ids[2:4],
        ids[-2:],
    ]
    assert [page["next_cursor"] for page in pages] == [ids[1], ids[3], None]
    assert pages[0]["items"][0]["entity_id"] == "page-4"
    assert pages[0]["items"][0]["payload"] == {"n": 4}
    items = pages[0]["items"]
    contract_fields = {
        "id", "job_type", "entity_id", "payload", "state", "attempt", "max_retries",
        "next_run_at", "lease_owner", "lease_expires_at", "correlation_id", "idempotency_key",
        "replay_of_job_id", "replay_of_attempt_id", "last_error", "created_at", "updated_at",
    }  # fmt: skip
    assert contract_fields <= set(items[0])


# --- a worker burst and what follows from it --------------------------------------------------


@dataclass(frozen=True)
class Drained:
    ok: list[int]
    dead_once: int  # {"fail": "retryable"}, --max-retries 0
    dead_thrice: int  # {"fail": "retryable"}, --max-retries 2
    failed: int  # {"fail": "terminal"}
    worker: Result


@pytest.fixture(scope="module")
def drained(prepared: Prepared) -> Drained:
    cli = prepared.cli
    ok = seed(cli.database_url, *[(f"drain-{n}", {}) for n in range(20)])
    (thrice,) = seed(cli.database_url, ("dlq-thrice", {"fail": "retryable"}), max_retries=2)
    (terminal,) = seed(cli.database_url, ("terminal", {"fail": "terminal"}))
    once = cli(
        "enqueue", "noop", "dlq-once", "--payload", '{"fail":"retryable"}', "--max-retries", "0"
    )
    assert once.code == 0, once
    worker = cli.with_env(
        SYNCBRIDGE_JOB_BACKOFF_SECONDS_BASE="0", SYNCBRIDGE_POLL_INTERVAL_SECONDS="0.05"
    )("worker", "--burst", "--concurrency", "4")
    return Drained(ok, int(once.out), thrice, terminal, worker)


def test_worker_burst_drains_due_jobs_and_exits_0(cli: Cli, drained: Drained) -> None:
    assert drained.worker.code == 0, drained.worker.err
    assert drained.worker.out == ""
    states = job_states(cli.database_url)
    assert {states[i] for i in drained.ok} == {("succeeded", 1)}
    assert states[drained.dead_once] == ("dead", 1)
    assert states[drained.dead_thrice] == ("dead", 3)
    assert states[drained.failed] == ("failed", 1)


def test_dlq_lists_dead_jobs_with_their_last_error(cli: Cli, drained: Drained) -> None:
    document = cli("dlq", "list", "--json").json()
    assert document["next_cursor"] is None
    dead = {item["id"]: item for item in document["items"]}
    assert {item["state"] for item in dead.values()} == {"dead"}
    assert drained.failed not in dead
    once = dead[drained.dead_once]
    assert_times_rfc3339(once, "created_at", "updated_at", "finished_at", "next_run_at")
    assert (once["entity_id"], once["attempt"], once["max_retries"]) == ("dlq-once", 1, 0)
    error = once["last_error"]
    assert (error["class"], error["message"], error["retryable"]) == (
        "UpstreamUnavailable",
        "noop asked to fail (attempt 1)",
        True,
    )
    assert dead[drained.dead_thrice]["last_error"]["message"] == "noop asked to fail (attempt 3)"


def test_jobs_show_lists_attempts_oldest_first(cli: Cli, drained: Drained) -> None:
    detail = cli("jobs", "show", str(drained.dead_thrice), "--json").json()
    attempts = detail["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["error_message"] for a in attempts] == [
        f"noop asked to fail (attempt {n})" for n in (1, 2, 3)
    ]
    assert {(a["job_id"], a["error_class"], a["retryable"]) for a in attempts} == {
        (drained.dead_thrice, "UpstreamUnavailable", True)
    }
    starts = [datetime.fromisoformat(a["started_at"]) for a in attempts]
    assert starts == sorted(starts)
    for attempt in attempts:
        assert_times_rfc3339(attempt, "started_at", "finished_at")
        assert attempt["duration_ms"] >= 0
    assert detail["lineage"] == {"replays": [], "replayed_by": []}


def test_replay_makes_a_linked_job_and_refuses_a_second_while_it_is_active(
    cli: Cli, drained: Drained
) -> None:
    old = drained.dead_once
    first = cli("replay", str(old))
    assert first.code == 0, first
    new = int(first.out)
    new_detail, old_detail, second = cli.many(
        ("jobs", "show", str(new), "--json"),
        ("jobs", "show", str(old), "--json"),
        ("replay", str(old)),
    )
    replayed = new_detail.json()
    assert (replayed["replay_of_job_id"], replayed["state"], replayed["entity_id"]) == (
        old,
        "pending",
        "dlq-once",
    )
    assert replayed["payload"] == {"fail": "retryable"}
    assert replayed["lineage"] == {"replays": [old], "replayed_by": []}
    original = old_detail.json()
    assert original["state"] == "dead"  # replay never changes the old job
    assert original["lineage"] == {"replays": [], "replayed_by": [new]}
    assert second.code == 1
    assert str(new) in second.error_line and "active" in second.error_line


def test_replay_all_dry_run_changes_nothing(cli: Cli, drained: Drained) -> None:
    before = dump(cli.database_url)
    result = cli("replay", "--all", "--dry-run", "--json")
    assert result.code == 0, result
    items = {item["replayed_job_id"]: item for item in result.json()["items"]}
    assert items[drained.dead_thrice] == {
        "replayed_job_id": drained.dead_thrice,
        "new_job_id": None,
        "refused": None,
        "dry_run": True,
    }
    assert drained.failed not in items  # --all replays dead jobs only
    assert dump(cli.database_url) == before


def test_retry_puts_a_failed_job_back_to_pending_keeping_its_attempts(
    cli: Cli, drained: Drained
) -> None:
    retried = cli("retry", str(drained.failed))
    assert (retried.code, retried.out) == (0, f"job {drained.failed} is pending\n")
    detail = cli("jobs", "show", str(drained.failed), "--json").json()
    assert (detail["state"], detail["attempt"], detail["max_retries"]) == ("pending", 1, 3)
    assert [(a["number"], a["error_class"]) for a in detail["attempts"]] == [(1, "ValidationError")]


def test_refusals_exit_1_with_one_line_and_change_nothing(cli: Cli, drained: Drained) -> None:
    (pending,) = seed(
        cli.database_url, ("refuse-pending", {}), run_at=datetime(2099, 1, 1, tzinfo=UTC)
    )
    seed(cli.database_url, ("refuse-key-1", {"v": 1}), idempotency_key="refuse-key")
    succeeded = drained.ok[0]
    before = dump(cli.database_url)
    results = cli.many(
        ("retry", str(pending)),
        ("replay", str(pending)),
        ("cancel", str(succeeded)),
        (
            "enqueue",
            "noop",
            "refuse-key-2",
            "--idempotency-key",
            "refuse-key",
            "--payload",
            '{"v":2}',
        ),
    )
    assert dump(cli.database_url) == before
    assert [r.code for r in results] == [1] * len(results)
    assert all(r.out == "" for r in results)
    assert [r.error_line for r in results] == [
        f"error: job {pending} is pending; only failed jobs can be retried",
        f"error: job {pending} is pending; only dead or failed jobs can be replayed",
        f"error: job {succeeded} is succeeded; only pending or running jobs can be cancelled",
        results[3].error_line,
    ]  # an unknown job type or job id: see test_bad_input.py
    assert "idempotency key 'refuse-key' already belongs to job" in results[3].error_line


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite+pysqlite://"])
def test_a_worker_on_an_in_memory_database_is_a_usage_error(url: str, tmp_path: Path) -> None:
    """Nothing else could ever enqueue into it, and its one shared connection cannot keep the
    worker's transactions apart: refused up front (exit 2), not left to run on an empty queue
    or to tell the user to migrate a database that vanishes with the command."""
    result = Cli(url, tmp_path)("worker", "--burst")
    assert result.code == 2, result
    assert "in-memory SQLite database cannot back a worker" in result.err
    assert "sqlite:///" in result.err  # says what to use instead


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_the_worker_class_refuses_an_in_memory_store(url: str) -> None:
    from syncbridge.worker import Worker

    store = Store(make_engine(url))
    try:
        with pytest.raises(ValueError, match="in-memory SQLite database cannot back a worker"):
            Worker(store, load_registry(), Settings(database_url=url))
    finally:
        store.engine.dispose()


def test_jobs_show_lists_the_effects_the_job_filed(cli: Cli) -> None:
    """Every ledger row the job wrote (its own effect and one applied on the way), in the table
    and in the JSON; a job that filed none says so."""
    engine = make_engine(cli.database_url)
    try:
        store = Store(engine)
        kind = "effects_shown"  # a type of its own: no other test's job is claimed here
        job = store.enqueue(EnqueueRequest(kind, "i_3001", {}, 0)).job
        bare = store.enqueue(EnqueueRequest(kind, "i_3002", {}, 0)).job
        claimed = {c.id: c for c in store.claim("w", [kind], 2, 60)}
        own = AppliedEffect("crm-invoice-i_3001", "billing", "inv_000007")
        on_the_way = AppliedEffect("crm-customer-c_1007", "billing", "c_1007")
        store.complete(
            [
                Completion(job.id, claimed[job.id].attempt, "w", AttemptOutcome.SUCCEEDED,
                           None, own, (on_the_way,)),
                Completion(bare.id, claimed[bare.id].attempt, "w", AttemptOutcome.SUCCEEDED),
            ]
        )  # fmt: skip
    finally:
        engine.dispose()
    shown, as_json, none = cli.many(
        ("jobs", "show", str(job.id)),
        ("jobs", "show", str(job.id), "--json"),
        ("jobs", "show", str(bare.id)),
    )
    assert shown.code == 0 and "effects in the ledger" in shown.out
    for effect in (own, on_the_way):
        assert effect.effect_key in shown.out
    effects = as_json.json()["effects"]
    assert [(e["effect_key"], e["upstream_ref"]) for e in effects] == [
        (own.effect_key, "inv_000007"),
        (on_the_way.effect_key, "c_1007"),
    ]
    assert none.code == 0 and "effects in the ledger: none" in none.out


def _ended(cli: Cli, entity: str, outcome: AttemptOutcome) -> int:
    """A job of a type of its own, its one attempt ended with ``outcome`` (no retry left)."""
    engine = make_engine(cli.database_url)
    try:
        store = Store(engine)
        job = store.enqueue(EnqueueRequest("answer_me", entity, {}, 0)).job
        [claimed] = store.claim("w", ["answer_me"], 1, 60)
        error = ErrorSnapshot("Boom", "it broke", outcome is not AttemptOutcome.FAILED)
        store.complete([Completion(job.id, claimed.attempt, "w", outcome, error)])
        if outcome is AttemptOutcome.TIMEOUT:  # asked about once, its upstream could not tell
            assert store.ask_again_later(job.id, "UpstreamUnavailable: 503", lambda n: 60.0)
        return job.id
    finally:
        engine.dispose()


def test_reconcile_answer_records_an_operators_answer(cli: Cli) -> None:
    """A dead job whose effect nobody upstream can tell: the operator's answer is recorded as
    reconcile's would be, its next ask goes, and nobody asks about it again."""
    dead = _ended(cli, "gone-upstream", AttemptOutcome.TIMEOUT)
    done = cli("reconcile", "--answer", str(dead), "not_applied", "--json")
    assert done.code == 0, done.err
    assert done.json() == {
        "job_id": dead,
        "effect_status": "not_applied",
        "answered_by": "operator",
    }
    detail = cli("jobs", "show", str(dead), "--json").json()
    assert (detail["state"], detail["effect_status"], detail["reconcile"]) == (
        "dead",
        "not_applied",
        None,
    )
    assert cli("check").code == 0  # INV_017: no next ask left for an answered job
    again = cli("reconcile", "--answer", str(dead), "applied")
    assert again.code == 1 and "answered already: not_applied" in again.err
    assert cli("jobs", "show", str(dead), "--json").json()["effect_status"] == "not_applied"


def test_reconcile_answer_refuses_what_is_not_unknown_and_changes_nothing(cli: Cli) -> None:
    failed = _ended(cli, "refused-upstream", AttemptOutcome.FAILED)  # a terminal refusal: known
    [pending] = seed(cli.database_url, ("answer-pending", {}))
    before = dump(cli.database_url)
    refusals = {
        "known outcome": (("--answer", str(failed), "applied"), 1, "not unknown"),
        "still to run": (("--answer", str(pending), "not_applied"), 1, "is pending"),
        "no such job": (("--answer", "999999", "applied"), 1, "999999"),
        "bad status": (("--answer", str(failed), "maybe"), 2, "'maybe' is not one of"),
        "bad id": (("--answer", "0", "applied"), 2, "0 is not in the range"),
        "hostile id": (("--answer", "1; DROP TABLE jobs", "applied"), 2, "is not a valid integer"),
        "missing status": (("--answer", str(failed)), 2, "requires 2 arguments"),
    }
    results = cli.many(*[("reconcile", *args) for args, _, _ in refusals.values()])
    for (name, (_, code, says)), result in zip(refusals.items(), results, strict=True):
        assert result.code == code, (name, result)
        assert says in result.err, (name, result.err)
    assert dump(cli.database_url) == before
