"""Alembic environment: the engine comes from ``syncbridge.migrate`` (config attribute)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine

from syncbridge.db.schema import metadata


def run_migrations_online() -> None:
    engine = context.config.attributes.get("engine")
    if not isinstance(engine, Engine):
        raise RuntimeError("run migrations through `syncbridge migrate`")
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode changes a SQLite table by copying it, dropping it and renaming the
            # copy. With foreign keys on, dropping ``jobs`` fails as soon as an attempt, a
            # ledger row or a replay points at a job: every database that has run a job. SQLite's
            # procedure for such changes: keys off (outside any transaction), check before
            # committing, keys back on.
            _outside_transaction(connection, "PRAGMA foreign_keys=OFF")
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:  # rolls the whole migration back
                        raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
            connection.commit()
        finally:
            if sqlite:
                connection.rollback()
                _outside_transaction(connection, "PRAGMA foreign_keys=ON")


def _outside_transaction(connection: Connection, pragma: str) -> None:
    """A PRAGMA that SQLite ignores inside a transaction, sent on the driver connection (which
    runs in autocommit mode): through SQLAlchemy it would first begin one."""
    connection.connection.driver_connection.execute(pragma)  # type: ignore[union-attr]


run_migrations_online()
