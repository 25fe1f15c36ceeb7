"""SQLite wake-ups: a watcher thread polls ``PRAGMA data_version`` and wakes the worker when
another connection commits, backs off while nothing happens, reports errors without dying, and
does nothing for an in-memory database. SQLite only: these tests make their own files.

No test asserts how fast anything is: bounds are generous and only catch a watcher that never
wakes, never reports or never stops. Waits are on a condition the watcher's callbacks signal.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from syncbridge.db import sqlite_watch
from syncbridge.db.engine import make_engine
from syncbridge.db.sqlite_watch import SqliteWatcher

BOUND = 5.0  # seconds; only a broken watcher comes near it
FASTEST = 0.001
SLOWEST = 0.05


class Recorder:
    """The watcher's callbacks, recorded; tests wait on what they expect to see."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.wakes = 0
        self.errors: list[str] = []
        self.polls: list[tuple[bool, float]] = []

    def wake(self) -> None:
        with self._changed:
            self.wakes += 1
            self._changed.notify_all()

    def error(self, message: str) -> None:
        with self._changed:
            self.errors.append(message)
            self._changed.notify_all()

    def poll(self, changed: bool, wait: float) -> None:
        with self._changed:
            self.polls.append((changed, wait))
            self._changed.notify_all()

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        with self._changed:
            assert self._changed.wait_for(condition, BOUND), f"no {what} within {BOUND}s"

    def wait_polls(self, more: int) -> None:
        """Wait until the watcher has polled ``more`` times from now."""
        with self._changed:
            target = len(self.polls) + more
        self.wait_until(lambda: len(self.polls) >= target, f"{more} more polls")

    def settle(self) -> None:
        """Wait for the wake-up on connect and one poll after it."""
        self.wait_until(lambda: self.wakes >= 1, "wake-up on connect")
        self.wait_polls(1)


def watcher_for(
    path: Path | str, recorder: Recorder, fastest: float = FASTEST, slowest: float = SLOWEST
) -> SqliteWatcher:
    return SqliteWatcher(
        URL.create("sqlite", database=str(path)),
        recorder.wake,
        recorder.error,
        fastest=fastest,
        slowest=slowest,
        on_poll=recorder.poll,
    )


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A WAL database with one table, and a connection that writes to it."""
    conn = sqlite3.connect(tmp_path / "watched.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x INTEGER)")
    yield conn
    conn.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def watching(tmp_path: Path, writer: sqlite3.Connection, recorder: Recorder) -> Iterator[None]:
    watcher = watcher_for(tmp_path / "watched.db", recorder)
    watcher.start()
    try:
        yield
    finally:
        watcher.stop()
    assert recorder.errors == []


@pytest.mark.usefixtures("watching")
def test_a_commit_from_another_connection_wakes_the_watcher(
    writer: sqlite3.Connection, recorder: Recorder
) -> None:
    recorder.settle()
    woken = recorder.wakes
    writer.execute("INSERT INTO t VALUES (1)")
    recorder.wait_until(lambda: recorder.wakes > woken, "wake-up after the commit")
    assert (True, FASTEST) in recorder.polls  # and the next poll comes at the fastest pace


def test_a_commit_through_the_engine_wakes_the_watcher(tmp_path: Path, recorder: Recorder) -> None:
    """The engine's own setup (WAL, BEGIN IMMEDIATE), at a path that needs escaping in a URI."""
    folder = tmp_path / "a dir #1 %20"
    folder.mkdir()
    engine = make_engine(URL.create("sqlite", database=str(folder / "jobs?.db")).render_as_string())
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    watcher = watcher_for(folder / "jobs?.db", recorder)
    watcher.start()
    try:
        recorder.settle()
        woken = recorder.wakes
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        recorder.wait_until(lambda: recorder.wakes > woken, "wake-up after the engine's commit")
    finally:
        watcher.stop()
        engine.dispose()
    assert recorder.errors == []


@pytest.mark.usefixtures("watching")
def test_no_wake_ups_while_nothing_is_committed(recorder: Recorder) -> None:
    recorder.settle()
    recorder.wait_polls(12)
    assert recorder.wakes == 1  # the one on connect
    assert not any(changed for changed, _ in recorder.polls)


@pytest.mark.usefixtures("watching")
def test_a_write_transaction_that_changes_nothing_does_not_wake(
    writer: sqlite3.Connection, recorder: Recorder
) -> None:
    """An empty claim (BEGIN IMMEDIATE, an UPDATE that matches nothing, COMMIT) must not wake:
    otherwise every idle worker would wake itself forever."""
    recorder.settle()
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE t SET x = 2 WHERE x = -1")
    writer.execute("COMMIT")
    recorder.wait_polls(10)
    assert recorder.wakes == 1


@pytest.mark.usefixtures("watching")
def test_idle_polls_back_off_to_the_slowest(recorder: Recorder) -> None:
    recorder.wait_until(lambda: len(recorder.polls) >= 9, "9 polls")
    waits = [wait for _, wait in recorder.polls[:9]]
    # fastest after connect, then doubling: 2, 4, 8, 16, 32 ms, capped at 50 ms
    assert waits == pytest.approx([0.002, 0.004, 0.008, 0.016, 0.032, 0.05, 0.05, 0.05, 0.05])


@pytest.mark.parametrize(
    ("changed", "expected"),
    [(True, FASTEST), (False, 0.008), (False, SLOWEST)],
    ids=["change-resets", "idle-doubles", "idle-capped"],
)
def test_next_wait(changed: bool, expected: float) -> None:
    current = 0.004 if expected != SLOWEST else 0.04
    assert sqlite_watch.next_wait(current, changed, FASTEST, SLOWEST) == expected


def test_the_watcher_never_holds_up_a_checkpoint(
    tmp_path: Path, writer: sqlite3.Connection, recorder: Recorder
) -> None:
    """Each poll's read transaction ends with the poll: a pinned WAL snapshot would make a
    TRUNCATE checkpoint busy and keep the WAL growing. Right after each poll (on the watcher's
    own thread, so nothing races) another connection writes and checkpoints without waiting."""
    checkpointer = sqlite3.connect(
        tmp_path / "watched.db", isolation_level=None, timeout=0, check_same_thread=False
    )
    results: list[tuple[int, int]] = []

    def write_and_checkpoint(changed: bool, wait: float) -> None:
        if len(results) < 10:
            checkpointer.execute("INSERT INTO t VALUES (1)")
            busy, _, _ = checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            results.append((busy, os.path.getsize(tmp_path / "watched.db-wal")))
        recorder.poll(changed, wait)

    watcher = SqliteWatcher(
        URL.create("sqlite", database=str(tmp_path / "watched.db")),
        recorder.wake,
        recorder.error,
        fastest=FASTEST,
        slowest=FASTEST,
        on_poll=write_and_checkpoint,
    )
    watcher.start()
    try:
        recorder.wait_until(lambda: len(recorder.polls) >= 10, "10 polls")
    finally:
        watcher.stop()
        checkpointer.close()
    assert results == [(0, 0)] * 10  # (not busy, WAL truncated) every time
    assert recorder.errors == []


def test_a_missing_file_is_reported_not_created_and_watched_once_it_appears(
    tmp_path: Path, recorder: Recorder
) -> None:
    path = tmp_path / "later.db"
    watcher = watcher_for(path, recorder)
    watcher.start()
    try:
        recorder.wait_until(lambda: bool(recorder.errors), "an error")
        assert recorder.errors[0] == f"{path}: unable to open database file"
        assert not path.exists()
        assert recorder.wakes == 0

        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x INTEGER)")
        recorder.settle()  # connected: woken once, polling
        woken = recorder.wakes
        conn.execute("INSERT INTO t VALUES (1)")
        recorder.wait_until(lambda: recorder.wakes > woken, "wake-up after the commit")
        conn.close()
    finally:
        watcher.stop()


def test_a_removed_file_is_reported_and_the_thread_lives_on(
    tmp_path: Path, writer: sqlite3.Connection, recorder: Recorder
) -> None:
    path = tmp_path / "watched.db"
    watcher = watcher_for(path, recorder)
    watcher.start()
    try:
        recorder.settle()
        for name in ("watched.db", "watched.db-wal", "watched.db-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        recorder.wait_until(lambda: bool(recorder.errors), "an error")
        assert recorder.errors[0] == f"{path}: the database file was removed"
        recorder.wait_until(lambda: len(recorder.errors) >= 2, "a second error: still retrying")
        assert recorder.errors[1] == f"{path}: unable to open database file"
    finally:
        watcher.stop()


@pytest.mark.parametrize("kind", ["not-a-database", "directory"])
def test_an_unreadable_path_is_reported_and_the_thread_lives_on(
    tmp_path: Path, recorder: Recorder, kind: str
) -> None:
    path = tmp_path / "unreadable.db"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"not a database, " * 512)
    watcher = watcher_for(path, recorder)
    watcher.start()
    try:
        recorder.wait_until(lambda: len(recorder.errors) >= 2, "two errors: still retrying")
        assert all(error.startswith(f"{path}: ") for error in recorder.errors)
        assert recorder.wakes == 0
    finally:
        watcher.stop()


def test_stop_interrupts_a_long_retry_wait(
    tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_watch, "RETRY_FIRST_SECONDS", 3600.0)
    watcher = watcher_for(tmp_path / "missing.db", recorder)
    watcher.start()
    recorder.wait_until(lambda: bool(recorder.errors), "an error")
    started = time.monotonic()
    watcher.stop()
    assert time.monotonic() - started < BOUND  # not the hour of the retry wait
    assert not any(t.name == "syncbridge-watch" for t in threading.enumerate())


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite+pysqlite://"])
def test_in_memory_databases_are_not_watched(url: str, recorder: Recorder) -> None:
    watcher = SqliteWatcher(make_url(url), recorder.wake, recorder.error, on_poll=recorder.poll)
    assert watcher.path is None
    watcher.start()
    watcher.stop()
    assert not any(t.name == "syncbridge-watch" for t in threading.enumerate())
    assert (recorder.wakes, recorder.errors, recorder.polls) == (0, [], [])


def test_uri_filenames_are_reported_and_not_watched(tmp_path: Path, recorder: Recorder) -> None:
    url = make_url(f"sqlite:///file:{tmp_path / 'x.db'}?mode=ro&uri=true")
    watcher = SqliteWatcher(url, recorder.wake, recorder.error)
    watcher.start()
    watcher.stop()
    assert len(recorder.errors) == 1
    assert "not watched" in recorder.errors[0]
    assert recorder.wakes == 0


def test_relative_paths_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    watcher = SqliteWatcher(make_url("sqlite:///./data/jobs.db"), lambda: None)
    assert watcher.path == tmp_path / "data" / "jobs.db"


@pytest.mark.parametrize(
    ("url", "fastest", "slowest", "complaint"),
    [
        ("postgresql+psycopg://localhost/db", 0.001, 0.05, "needs a SQLite URL"),
        ("sqlite://", 0.0, 0.05, "0 < fastest <= slowest"),
        ("sqlite://", 0.1, 0.05, "0 < fastest <= slowest"),
        ("sqlite://", 0.001, float("inf"), "both finite"),
    ],
)
def test_bad_arguments_are_refused(
    url: str, fastest: float, slowest: float, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        SqliteWatcher(make_url(url), lambda: None, fastest=fastest, slowest=slowest)
