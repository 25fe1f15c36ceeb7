"""Alembic environment: the engine comes from ``syncbridge.migrate`` (config attribute)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from syncbridge.db.schema import metadata


def run_migrations_online() -> None:
    engine = context.config.attributes.get("engine")
    if not isinstance(engine, Engine):
        raise RuntimeError("run migrations through `syncbridge migrate`")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
