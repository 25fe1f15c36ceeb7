"""``syncbridge worker`` and SIGTERM while it is still setting up (plugins, metrics, upstream
clients): the stop is kept and honoured once the worker runs, exit 0, instead of the signal's
default action killing the process (exit 143, found by a crash drill in session 9)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from syncbridge import migrate
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.models import EnqueueRequest
from syncbridge.states import JobState

# A real process (the worker registers faulthandler on its stderr, which CliRunner replaces):
# the worker command as usual, except that building the upstream clients, a step of its
# set-up, first sends the process a SIGTERM.
SIGNALLED_DURING_SET_UP = """
import os, signal, sys
import syncbridge.upstream as upstream
real_build = upstream.build_upstreams
def build_while_signalled(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)  # arrives before the worker exists
    return real_build(*args, **kwargs)
upstream.build_upstreams = build_while_signalled
from syncbridge.cli.main import cli
cli(["--database-url", sys.argv[1], "worker"])
"""


def test_a_stop_during_set_up_is_honoured_not_fatal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    job = Store(engine).enqueue(EnqueueRequest("noop", "e1", {}, 3)).job
    done = subprocess.run(
        [sys.executable, "-c", SIGNALLED_DURING_SET_UP, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # not -15: the signal did not kill it
    assert Store(engine).get_job(job.id).state is JobState.PENDING  # stopped before claiming
    engine.dispose()


def test_a_stop_while_the_database_does_not_answer_is_honoured() -> None:
    # A database that accepts the connection and never answers (a partition, a server that
    # hangs): the worker waits in its first connect. SIGTERM and Ctrl-C must still end it
    # (a review found a first version of the fix that only noted the stop and waited on).
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/never"
        worker = subprocess.Popen(
            [sys.executable, "-m", "syncbridge", "--database-url", url, "worker"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            server.settimeout(30)
            connection, _ = server.accept()  # the worker is now waiting for an answer
            with connection:
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(timeout=20) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
