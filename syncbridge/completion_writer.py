"""Records finished attempts on a thread of its own, so the worker's loop claims the next jobs
while the last batch's outcomes are being written (PostgreSQL runs the two statements on two
connections at once; one after the other, each waited for the other's round trip).

Only the I/O moves: the loop hands batches in and takes results out, and does all the
bookkeeping (stats, events) on its own thread as before. A batch that could not be written (the
database is down) is kept and tried again, in order, until it is written or the worker stops:
fencing makes a late write safe, exactly as when the loop kept it. Stopping, it keeps trying
until its time is up, and what it could not write is reported (``unwritten``), never dropped
in silence.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from syncbridge.models import Completion, CompletionResult

Write = Callable[[list[Completion]], "list[CompletionResult] | None"]


class CompletionWriter:
    def __init__(self, write: Write, on_written: Callable[[], None], retry_seconds: float) -> None:
        self._write = write
        self._on_written = on_written
        self._retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._queued: list[Completion] = []
        self._writing: list[Completion] = []  # the batch being written (not in _queued)
        self._written: list[CompletionResult] = []
        self._written_count = 0  # completions behind ``_written``
        self._outstanding = 0  # handed in, results not yet taken out
        self._stopping = False
        self._deadline = float("inf")  # monotonic; when stopping, the last moment to try
        self._failure: BaseException | None = None  # raised on the loop thread, as before
        self._thread = threading.Thread(target=self._run, name="syncbridge-writer", daemon=True)
        self._thread.start()

    @property
    def outstanding(self) -> int:
        """Completions handed in whose results the loop has not taken out yet."""
        with self._lock:
            return self._outstanding

    def submit(self, completions: list[Completion]) -> None:
        if not completions:
            return
        with self._lock:
            self._queued.extend(completions)
            self._outstanding += len(completions)
            self._work.notify()

    def take_results(self) -> list[CompletionResult]:
        """What was written since the last call. An error the write let through (``write``
        handles a lost database itself) is raised here, on the caller's thread, as if the
        caller had written."""
        with self._lock:
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            results, self._written = self._written, []
            self._outstanding -= self._written_count
            self._written_count = 0
            return results

    def stop(self, timeout: float) -> None:
        """Write what is queued, trying again while the database is away, for at most
        ``timeout`` seconds; then end the thread. :meth:`unwritten` tells what is left."""
        with self._lock:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._work.notify()
        self._thread.join(timeout + self._retry_seconds)

    def unwritten(self) -> list[Completion]:
        """After :meth:`stop`: the completions that could not be written in time, the batch
        of a write still blocked (a database that stopped answering) included."""
        with self._lock:
            return self._writing + self._queued

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queued and not self._stopping:
                    self._work.wait()
                if not self._queued:
                    return
                batch, self._queued = self._queued, []
                self._writing = batch
            try:
                results = self._write(batch)
            except BaseException as exc:  # handed to the loop thread, which decides
                with self._lock:
                    self._writing = []
                    self._queued = batch + self._queued
                    self._failure = exc
                self._on_written()
                return
            with self._lock:
                self._writing = []
                if results is None:
                    self._queued = batch + self._queued  # in order, tried again
                    left = self._deadline - time.monotonic()
                    if left <= 0:
                        return
                    self._work.wait(min(self._retry_seconds, left))
                    continue
                self._written.extend(results)
                self._written_count += len(batch)
            self._on_written()
