"""Statements sent straight through psycopg on the enqueue hot paths (PostgreSQL).

There SQLAlchemy's own work costs more than the statement: about 60 µs of Python per execution,
and a ``SELECT 1`` round trip (the pool's pre-ping) plus as much Python again per checkout,
against roughly 250 µs for a one-row insert and its commit. These paths therefore run psycopg
on a connection taken from the engine's pool (same settings, same pool), and raise SQLAlchemy's
exception classes as ``Connection.execute`` would (the API maps ``OperationalError`` to 503).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import Pool

T = TypeVar("T")
Driver = psycopg.Connection[Any]


def driver_of(conn: Connection) -> Driver:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


@contextmanager
def driver_errors(conn: Connection, statement: str) -> Iterator[None]:
    """psycopg's errors raised as SQLAlchemy's (``IntegrityError``, ``OperationalError``..., with
    the original as ``.orig``); a connection found broken is invalidated, as SQLAlchemy does."""
    try:
        yield
    except psycopg.Error as exc:
        broken = driver_of(conn).broken
        if broken:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            statement,
            None,
            exc,
            psycopg.Error,
            connection_invalidated=broken,
            dialect=conn.dialect,
        ) from None


class HeldConnection:
    """One pooled autocommit connection kept checked out between single enqueues.

    Kept, it skips the checkout and its pre-ping; it is tested by use instead. When it turns out
    broken (a server restart while it sat idle), it is dropped and the work runs once more on a
    freshly checked-out (pinged) connection. Only idempotent work may run here: the one-statement
    ``INSERT .. ON CONFLICT DO NOTHING`` is, since if the first try did commit, the second meets
    the conflict and the caller's slow path returns that job.

    One caller at a time: a caller that finds it busy gets a pooled connection, exactly as
    before. The connection goes back to the pool when its owner is garbage collected; if the
    engine was disposed meanwhile it is closed instead (the disposed pool would leak it).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._lock = threading.Lock()
        self._slot = _Slot()
        weakref.finalize(self, self._slot.release)

    def run(self, work: Callable[[Connection], T]) -> T:
        if not self._lock.acquire(blocking=False):
            with self._engine.connect() as conn:
                return work(conn)
        try:
            conn = self._slot.take(self._engine)
            try:
                return work(conn)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
            self._slot.release()
            return work(self._slot.take(self._engine))
        finally:
            self._lock.release()


class _Slot:
    """The held connection and the pool it came from; no reference back to its owner."""

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.pool: Pool | None = None

    def take(self, engine: Engine) -> Connection:
        if self.conn is not None and (self.conn.invalidated or self.pool is not engine.pool):
            self.release()  # broken, or the engine was disposed since
        if self.conn is None:
            self.conn = engine.connect()
            self.pool = engine.pool
        return self.conn

    def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self.pool is not conn.engine.pool and not conn.invalidated:
            conn.invalidate()  # closes it: the disposed pool it belongs to would not
        conn.close()
