"""Wake-ups on PostgreSQL: enqueue sends ``NOTIFY``, workers ``LISTEN`` on a connection of
their own (autocommit, outside the pool, as psycopg 3 requires).

A notification only shortens a worker's wait: workers still poll, so a notification lost while
the listener reconnects delays a job by at most one poll interval and loses nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

from syncbridge.db.engine import driver_message

CHANNEL = "syncbridge_jobs"


def notify_enqueued(conn: Connection, job_type: str) -> None:
    """Queue a notification in the caller's transaction; delivered (and deduplicated by the
    server within the transaction) at commit, so workers never wake for an uncommitted job."""
    conn.execute(
        text("SELECT pg_notify(:channel, :job_type)"), {"channel": CHANNEL, "job_type": job_type}
    )


class Listener:
    """A daemon thread calling ``wake()`` on every notification for one of ``job_types``."""

    def __init__(
        self,
        url: URL,
        job_types: set[str],
        wake: Callable[[], None],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._job_types = job_types
        self._wake = wake
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="syncbridge-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    backoff = 0.5
                    self._wake()  # anything enqueued while we were not listening
                    while not self._stop.is_set():
                        # Short: stop() waits for this to return.
                        for note in conn.notifies(timeout=0.2):
                            if note.payload in self._job_types:
                                self._wake()
            except psycopg.Error as exc:
                if self._on_error is not None:
                    self._on_error(driver_message(exc))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
