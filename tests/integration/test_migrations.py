"""Migrations match the models (no drift) and go down and up again cleanly, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, text

from syncbridge import migrate
from syncbridge.clock import FakeClock
from syncbridge.db.base import params_hash
from syncbridge.db.engine import check_ready, make_engine
from syncbridge.db.queries import Store
from syncbridge.db.schema import jobs, metadata
from syncbridge.errors import DatabaseNotReady
from syncbridge.invariants import run_checks
from syncbridge.jobtypes import AppliedEffect
from syncbridge.models import Completion, EnqueueRequest, ErrorSnapshot
from syncbridge.states import AttemptOutcome


def test_migrations_match_models_and_round_trip(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        try:
            check_ready(engine)
            raise AssertionError("an empty database must not count as ready")
        except DatabaseNotReady as exc:
            assert "syncbridge migrate" in str(exc)
        migrate.upgrade(engine)
        migrate.upgrade(engine)  # idempotent
        check_ready(engine)
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), metadata
            )
        assert diff == []
        migrate.downgrade(engine, "base")
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(engine)
        check_ready(engine)
        with engine.connect() as conn:
            assert {"jobs", "attempts", "ledger", "workers"} <= set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _index_predicates(engine: Engine) -> dict[str, str | None]:
    """Each jobs index's WHERE clause as the database reports it (None: not partial)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            rows = conn.execute(
                text(
                    "SELECT indexrelid::regclass::text, pg_get_expr(indpred, indrelid) "
                    "FROM pg_index WHERE indrelid = 'jobs'::regclass"
                )
            ).all()
        else:
            rows = conn.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'"
                )
            ).all()
            rows = [
                (name, sql.split(" WHERE ", 1)[1] if sql and " WHERE " in sql else None)
                for name, sql in rows
            ]
    return {str(name): predicate for name, predicate in rows}


def _attempts_options(engine: Engine) -> list[str] | None:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT reloptions FROM pg_class WHERE oid = 'attempts'::regclass")
        ).scalar_one()
    return None if found is None else list(found)


def test_create_all_gives_the_table_options_the_migrations_give(database_url: str) -> None:
    """``metadata.create_all`` (tests, tools) and the migrations agree on attempts' fillfactor."""
    engine = make_engine(database_url)
    try:
        migrate.downgrade(engine, "base")
        metadata.create_all(engine)
        if engine.dialect.name == "postgresql":
            assert _attempts_options(engine) == ["fillfactor=50"]
        metadata.drop_all(engine)
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def _keyed_job_as_before_0008(
    engine: Engine, entity_id: str, payload: dict[str, Any], key: str
) -> int:
    """A keyed job written as the store wrote one before migration 0008 (a key lived only in
    its job's row): the code of this version needs the idempotency_keys table."""
    now = FakeClock().now()
    row = {
        "job_type": "noop",
        "entity_id": entity_id,
        "payload": payload,
        "state": "pending",
        "attempt": 0,
        "budget_start": 0,
        "max_retries": 0,
        "next_run_at": now,
        "correlation_id": f"c-{key}",
        "idempotency_key": key,
        "params_hash": params_hash("noop", entity_id, payload),
        "created_at": now,
        "updated_at": now,
    }
    with engine.begin() as conn:
        return int(conn.execute(insert(jobs).values(row).returning(jobs.c.id)).scalar_one())


def test_upgrade_and_downgrade_keep_live_data(database_url: str) -> None:
    """0003 → head → 0003 → head on a database that has run jobs: attempts, a ledger row and a
    replay all point at jobs (SQLite rebuilds the table for a changed constraint, which its
    foreign keys must survive), and nothing is lost; keys stay unique at every step."""
    engine = make_engine(database_url)
    try:
        migrate.downgrade(engine, "base")
        migrate.upgrade(engine, "0003")
        store = Store(engine, FakeClock())
        keyed_id = _keyed_job_as_before_0008(engine, "a", {"n": 1}, "k-1")
        store.enqueue(EnqueueRequest("noop", "b", {}, 3))
        [claimed] = store.claim("w", ["noop"], 1, 60)
        effect = AppliedEffect("effect-1", "billing", "ref-1")
        store.complete([Completion(claimed.id, 1, "w", AttemptOutcome.SUCCEEDED, effect=effect)])
        [other] = store.claim("w", ["noop"], 1, 60)
        failure = ErrorSnapshot("Boom", "no", retryable=False)
        store.complete([Completion(other.id, 1, "w", AttemptOutcome.FAILED, error=failure)])
        replay = store.replay(other.id)
        before = {job.id: job for job in store.list_jobs(limit=10)}
        attempts_before = {job_id: store.attempts_of(job_id) for job_id in before}

        for target in ("head", "0003", "head"):
            if target == "head":
                migrate.upgrade(engine)
            else:
                migrate.downgrade(engine, target)
            if engine.dialect.name == "postgresql":  # 0006: room for the attempt's HOT update
                expected = ["fillfactor=50"] if target == "head" else None
                assert _attempts_options(engine) == expected, target
            after = Store(engine, FakeClock())
            assert {job.id: job for job in after.list_jobs(limit=10)} == before
            assert {job_id: after.attempts_of(job_id) for job_id in before} == attempts_before
            assert [row["effect_key"] for row in after.ledger_rows()] == ["effect-1"]
            if target == "head":  # 0008 copied the key into idempotency_keys
                request = EnqueueRequest("noop", "a", {"n": 1}, 0, idempotency_key="k-1")
                again = after.enqueue(request)
                assert again.deduplicated and again.job.id == keyed_id
        check_ready(engine)
        assert after.lineage_of(before[other.id])["replayed_by"] == [replay.id]
        predicates = _index_predicates(engine)
        for name in ("uq_jobs_idempotency_key", "ix_jobs_lineage", "ix_jobs_replay_of"):
            assert predicates[name] is not None and "IS NOT NULL" in predicates[name], name
        if engine.dialect.name == "postgresql":  # 0005: finished jobs only
            assert "<> ALL" in (predicates["ix_jobs_entity"] or "")
        else:
            assert predicates["ix_jobs_entity"] is None
        assert [check.code for check in run_checks(after) if not check.ok] == []
    finally:
        engine.dispose()


def test_downgrading_below_0010_refuses_a_job_with_two_effects_and_changes_nothing(
    database_url: str,
) -> None:
    """0010 lets a job file several effects; 0009 allows one row per job. The downgrade names
    the jobs and stops before changing the ledger: the rows and the index are still there. (On
    SQLite the downgrades of later revisions that ran before it stay done; upgrading again
    brings them back.)"""
    engine = make_engine(database_url)
    try:
        migrate.downgrade(engine, "base")
        migrate.upgrade(engine)
        store = Store(engine, FakeClock())
        store.enqueue(EnqueueRequest("noop", "b", {}, 3))
        [claimed] = store.claim("w", ["noop"], 1, 60)
        own, on_the_way = (AppliedEffect(f"effect-{n}", "billing", f"ref-{n}") for n in (1, 2))
        store.complete(
            [Completion(claimed.id, 1, "w", AttemptOutcome.SUCCEEDED, None, own, (on_the_way,))]
        )
        try:
            migrate.downgrade(engine, "0009")
        except RuntimeError as refused:
            assert f"[{claimed.id}]" in str(refused) and "more than one effect" in str(refused)
        else:
            raise AssertionError("the downgrade went through")
        assert sorted(row["effect_key"] for row in store.ledger_rows()) == ["effect-1", "effect-2"]
        assert "ix_ledger_job_id" in {
            index["name"] for index in inspect(engine).get_indexes("ledger")
        }
        with engine.connect() as conn:  # PostgreSQL rolls the whole downgrade back
            expected = "0011" if engine.dialect.name == "postgresql" else "0010"
            assert migrate.current_revision(conn) == expected
        migrate.upgrade(engine)
        check_ready(engine)
    finally:
        with engine.begin() as conn:  # the database of the module's next test goes down to base
            conn.execute(text("DELETE FROM ledger"))
        migrate.downgrade(engine, "base")
        engine.dispose()
