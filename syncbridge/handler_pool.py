"""The threads that run handlers: one inbox of attempts, one outbox of reports.

Cheaper per job than ``concurrent.futures.ThreadPoolExecutor``, which the worker used before:
no future per job (each has its own lock and condition), no done callbacks, no per-submit
check for idle threads. The worker drains the outbox on its own thread each tick, so reports
come back in the order handlers finished.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from syncbridge.executor import AttemptReport, classify, run_attempt
from syncbridge.jobtypes import JobContext, JobType

AttemptKey = tuple[int, int]  # job id, attempt number
_Task = tuple[AttemptKey, JobType, JobContext]


class HandlerPool:
    """``size`` daemon threads, started on first use. A thread stuck in a handler that ignores
    stop requests stays stuck (Python threads cannot be killed): the worker counts such
    attempts and claims that much less."""

    def __init__(
        self, size: int, on_finished: Callable[[], None], name: str = "syncbridge-handler"
    ) -> None:
        if size < 1:
            raise ValueError("a handler pool needs at least one thread")
        self._size = size
        self._name = name
        self._on_finished = on_finished
        self._inbox: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue[tuple[AttemptKey, AttemptReport]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def submit(self, key: AttemptKey, job_type: JobType, ctx: JobContext) -> None:
        if not self._threads:
            self._start_threads()
        self._inbox.put((key, job_type, ctx))

    def finished(self) -> list[tuple[AttemptKey, AttemptReport]]:
        """Every report that arrived since the last call, without waiting."""
        reports = []
        while True:
            try:
                reports.append(self._outbox.get_nowait())
            except queue.Empty:
                return reports

    def shutdown(self) -> list[AttemptKey]:
        """Drop the attempts not yet started (returned) and let every thread end once its
        current handler returns. Does not wait."""
        dropped = []
        while True:
            try:
                task = self._inbox.get_nowait()
            except queue.Empty:
                break
            if task is not None:
                dropped.append(task[0])
        for _ in self._threads:
            self._inbox.put(None)
        return dropped

    def _start_threads(self) -> None:
        for number in range(self._size):
            thread = threading.Thread(
                target=self._serve, name=f"{self._name}_{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _serve(self) -> None:
        inbox, outbox, on_finished = self._inbox, self._outbox, self._on_finished
        while True:
            task = inbox.get()
            if task is None:
                return
            key, job_type, ctx = task
            report: AttemptReport
            try:
                report = run_attempt(job_type, ctx)
            except BaseException as exc:  # a pool thread must outlive any handler
                report = classify(exc)
            outbox.put((key, report))
            on_finished()
