"""Statements sent straight through the driver on the hot paths (psycopg on PostgreSQL, and
``sqlite3`` for the SQLite claim).

There SQLAlchemy's own work costs more than the statement: about 60 µs of Python per execution,
and a ``SELECT 1`` round trip (the pool's pre-ping) plus as much Python again per checkout,
against roughly 250 µs for a one-row insert and its commit. These paths therefore run psycopg
on a connection taken from the engine's pool (same settings, same pool), and raise SQLAlchemy's
exception classes as ``Connection.execute`` would (the API maps ``OperationalError`` to 503).
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")
Driver = psycopg.Connection[Any]


def int_array(values: Iterable[int]) -> str:
    """Integers as one PostgreSQL array literal, for a ``%(name)s::bigint[]`` parameter.
    psycopg dumps a list element by element in Python: a flush's two lists of 400 integers
    cost ~670 µs that way and nothing as one joined string (measured per statement)."""
    return "{" + ",".join(map(str, values)) + "}"


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


def sqlite_driver_of(conn: Connection) -> sqlite3.Connection:
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


@contextmanager
def sqlite_errors(conn: Connection, statement: str) -> Iterator[None]:
    """``sqlite3``'s errors raised as SQLAlchemy's (``OperationalError`` for "database is
    locked"...), as ``Connection.execute`` would: the worker's outage handling catches those."""
    try:
        yield
    except sqlite3.Error as exc:
        raise DBAPIError.instance(
            statement, None, exc, sqlite3.Error, dialect=conn.dialect
        ) from None


# Callers that can each keep a connection between single enqueues at once (an application
# enqueues from several request threads). Sequential callers only ever use the first.
HELD_SLOTS = 4


class _Slot:
    __slots__ = ("conn", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.conn: Connection | None = None


class HeldConnection:
    """Up to :data:`HELD_SLOTS` pooled autocommit connections per engine, kept checked out
    between single enqueues.

    Kept, a connection skips the checkout (and, where the engine pings, its pre-ping); it is
    tested by use instead. When it turns out broken (a server restart while it sat idle), it is
    dropped, and with ``retry`` the work runs once more on a freshly checked-out connection.
    Retry only work that is safe to send twice, since the first try may have committed before
    the connection broke: the single enqueue's ``INSERT .. ON CONFLICT DO NOTHING`` is (the
    second try meets the conflict and the caller's slow path returns that job). The worker's
    claim and success flush are not: a second claim would take another batch while the first,
    whose answer was lost, waits out its lease unnoticed; a second flush would report its own
    committed successes as lost leases. They run with ``retry=False``, so the error reaches the
    worker, which logs the outage as with a pooled connection, and the next call reconnects.

    One set per engine (see :func:`held_connection`), so stores sharing an engine share the
    slots. A caller takes the first free slot, so one caller at a time keeps one connection, and
    concurrent callers each keep their own (their commits can then share a WAL flush: with one
    slot, four threads enqueued slower than one, each extra caller paying a checkout and a
    pre-ping). A caller that finds every slot busy gets a pooled connection, as before. Idle
    slots go back to the pool on :meth:`release`; all are closed when the engine is disposed (a
    disposed pool closes only the connections checked in).
    """

    def __init__(self, engine: Engine, slots: int = HELD_SLOTS) -> None:
        # Weak: the engine keeps this object; a cycle back would only delay its collection.
        self._engine = weakref.ref(engine)
        self._slots = [_Slot() for _ in range(slots)]

    def run(self, work: Callable[[Connection], T], retry: bool = True) -> T:
        for slot in self._slots:
            if slot.lock.acquire(blocking=False):
                try:
                    return self._run_on(slot, work, retry)
                finally:
                    slot.lock.release()
        with self._autocommit().connect() as conn:
            return work(conn)

    def release(self) -> None:
        """Check the idle connections back in, for a caller about to take pooled connections of
        its own: holding them meanwhile would double its share of the pool. Slots in use by
        other callers stay theirs."""
        for slot in self._slots:
            if slot.lock.acquire(blocking=False):
                try:
                    self._drop(slot)
                finally:
                    slot.lock.release()

    def discard(self) -> None:
        """Close the connections for good: called once the engine's pool was disposed (and
        replaced), where checking them in would park them in a pool that nobody closes."""
        for slot in self._slots:
            with slot.lock:
                conn, slot.conn = slot.conn, None
                if conn is not None:
                    conn.invalidate()
                    conn.close()

    def _run_on(self, slot: _Slot, work: Callable[[Connection], T], retry: bool) -> T:
        try:
            return work(self._take(slot))
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            self._drop(slot)
            if not retry:
                raise
        return work(self._take(slot))

    def _take(self, slot: _Slot) -> Connection:
        if slot.conn is not None and slot.conn.invalidated:
            self._drop(slot)
        if slot.conn is None:
            slot.conn = self._autocommit().connect()
        return slot.conn

    def _autocommit(self) -> Engine:
        engine = self._engine()
        assert engine is not None, "used through a store, which holds its engine"
        return engine.execution_options(isolation_level="AUTOCOMMIT")

    @staticmethod
    def _drop(slot: _Slot) -> None:
        conn, slot.conn = slot.conn, None
        if conn is not None:
            conn.close()


_HELD_ATTRIBUTE = "_syncbridge_held_connection"
_HELD_LOCK = threading.Lock()


def held_connection(engine: Engine) -> HeldConnection:
    """The engine's :class:`HeldConnection`, made on first use, kept on the engine itself (so it
    lives and dies with it) and closed when the engine is disposed."""
    with _HELD_LOCK:
        held = vars(engine).get(_HELD_ATTRIBUTE)
        if held is None:
            held = HeldConnection(engine)
            setattr(engine, _HELD_ATTRIBUTE, held)
            event.listen(engine, "engine_disposed", lambda _engine: held.discard())
        assert isinstance(held, HeldConnection)
        return held
