"""A fresh, migrated database for one benchmark run, next to the configured one.

PostgreSQL: a new database on the same server (the configured user needs ``CREATEDB``), dropped
with ``FORCE`` afterwards. SQLite: a new file in a new directory beside the configured file, so
it sits on the same disk, removed afterwards. The configured database itself is never touched.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from syncbridge import migrate
from syncbridge.bench.result import BenchError
from syncbridge.db.engine import driver_message, make_engine, normalise_url
from syncbridge.db.queries import Store


@dataclass
class Sandbox:
    url: str
    backend: str
    engine: Engine  # the engine's own: writes
    reader: Engine  # plain, for the benchmark's reads (no SQLite write lock; see below)

    @cached_property
    def store(self) -> Store:
        # One store, as an application holds one: it builds its hot statements once.
        return Store(self.engine)


def backend_of(url: str) -> str:
    try:
        return make_url(normalise_url(url)).get_backend_name()
    except ArgumentError as exc:
        raise BenchError(f"invalid database URL {url!r}: {exc}") from None


@contextmanager
def sandbox(configured_url: str, label: str) -> Iterator[Sandbox]:
    """A migrated, empty database for one run; always removed afterwards."""
    backend = backend_of(configured_url)
    if backend == "postgresql":
        context = postgres_database(configured_url, label)
    elif backend == "sqlite":
        context = _sqlite_file(make_url(configured_url), label)
    else:
        raise BenchError(f"bench supports PostgreSQL and SQLite, not {backend!r}")
    with context as url:
        engine = make_engine(url)
        # The store's SQLite engine opens every transaction with BEGIN IMMEDIATE, reads too; a
        # benchmark polling progress that way would queue for the workers' write lock and
        # slow them down. A plain engine reads from the WAL snapshot without taking it.
        reader = create_engine(normalise_url(url))
        try:
            logging.getLogger("alembic").setLevel(logging.WARNING)
            migrate.upgrade(engine)
            yield Sandbox(url=url, backend=backend, engine=engine, reader=reader)
        finally:
            reader.dispose()
            engine.dispose()


@contextmanager
def postgres_database(configured_url: str, label: str) -> Iterator[str]:
    """A new, empty database on the server of ``configured_url``; dropped afterwards."""
    configured = make_url(normalise_url(configured_url))
    name = f"{configured.database or 'postgres'}_bench_{label}_{uuid.uuid4().hex[:6]}"[:63]
    admin = create_engine(configured, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError as exc:
        admin.dispose()
        raise BenchError(
            f"cannot create a benchmark database on "
            f"{configured.render_as_string(hide_password=True)}: {driver_message(exc)} "
            "(bench runs in a database of its own and needs the CREATEDB privilege)"
        ) from None
    try:
        yield configured.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def _sqlite_file(configured: URL, label: str) -> Iterator[str]:
    if configured.database in (None, "", ":memory:"):
        raise BenchError(
            "bench needs a SQLite file (workers are separate processes), not an in-memory database"
        )
    parent = Path(configured.database).resolve().parent
    if not parent.is_dir():
        raise BenchError(f"directory of the SQLite database does not exist: {parent}")
    folder = Path(tempfile.mkdtemp(prefix=f".syncbridge-bench-{label}-", dir=parent))
    try:
        yield f"sqlite:///{folder / 'bench.db'}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
