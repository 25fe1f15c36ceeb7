"""Migrations match the models (no drift) and go down and up again cleanly, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from syncbridge import migrate
from syncbridge.db.engine import check_ready, make_engine
from syncbridge.db.schema import metadata
from syncbridge.errors import DatabaseNotReady


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
