"""The admin UI in a real browser (Debian's Chromium driven by Playwright) against a real
``syncbridge serve`` process: log in through the printed one-time link, open the jobs list, open
a dead job, replay it, follow the link to the new job, and check that a hostile entity id is
shown as text and never runs.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``; ``.ci/run`` installs it). Elsewhere
the test skips saying so; under ``CI=true`` it fails instead. With
``SYNCBRIDGE_SCREENSHOTS=docs/screenshots`` it also saves the screenshots of the main pages
there (they always go to the test's tmp dir).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from syncbridge import migrate
from syncbridge.db.engine import make_engine
from tests.api.seed import seed
from tests.api.support import HOSTILE
from tests.conftest import IN_CI
from tests.helpers import free_port
from tests.processes import stop, syncbridge_env

pytestmark = pytest.mark.processes

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
INSTALL_HINT = (
    "Debian's Chromium is not at /usr/bin/chromium: install it with "
    "`sudo apt-get install -y chromium` (CI's .ci/run does this)"
)
LOGIN_LINE = re.compile(r"one-time link\): (\S+)")


def _require_browser() -> Any:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"{INSTALL_HINT}; CI=true needs it")
        pytest.skip(INSTALL_HINT)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            raise
        pytest.skip("the playwright package is not installed: pip install -e '.[dev]'")
    return sync_playwright


def _read_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _login_url(process: subprocess.Popen[str], lines: queue.Queue[str], log: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                raise AssertionError(f"serve exited: {log.read_text()[-2000:]}") from None
            continue
        if match := LOGIN_LINE.search(line):
            return match.group(1)
    raise AssertionError(f"serve printed no login link: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A migrated SQLite file with an hour of history, served by `syncbridge serve`."""
    root = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{root / 'ui.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    hostile = seed(url)
    port = free_port()
    log = root / "serve.log"
    with open(log, "w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "syncbridge", "serve", "--port", str(port)],
            env=syncbridge_env(url),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            lines: queue.Queue[str] = queue.Queue()
            assert process.stdout is not None
            threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
            login = _login_url(process, lines, log)
            for _ in range(100):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            yield login, hostile.id
        finally:
            stop(process)  # type: ignore[arg-type]
            if process.stdout is not None:
                process.stdout.close()


def test_replay_a_dead_job_in_the_browser(served: tuple[str, int], tmp_path: Path) -> None:
    sync_playwright = _require_browser()
    login, dead_id = served
    base = login.split("/ui/")[0]
    shots = [tmp_path]
    if os.environ.get("SYNCBRIDGE_SCREENSHOTS"):
        shots.append(Path(os.environ["SYNCBRIDGE_SCREENSHOTS"]))
    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            page.goto(login)
            assert page.url == f"{base}/ui/"
            assert page.get_by_role("button", name="Log out").is_visible()
            _snap(page, shots, "dashboard")

            page.get_by_role("link", name="Jobs", exact=True).click()
            row = page.locator("tr", has_text=HOSTILE).filter(has_text="dead")
            assert row.locator("td.entity").inner_text() == HOSTILE
            _snap(page, shots, "jobs", full_page=False)

            row.get_by_role("link", name=f"#{dead_id}").click()
            assert page.url == f"{base}/ui/jobs/{dead_id}"
            assert page.locator("dd.entity").inner_text() == HOSTILE
            page.get_by_role("button", name="Replay").click()
            new_link = page.locator("#new-job")
            _snap(page, shots, "job")
            new_id = int(new_link.inner_text().lstrip("#"))
            new_link.click()
            assert page.url == f"{base}/ui/jobs/{new_id}"
            assert page.locator("h1 .badge").inner_text() == "pending"
            assert page.locator("dd.entity").inner_text() == HOSTILE
            assert page.locator("a.replays").inner_text() == f"#{dead_id}"
            page.locator("a.replays").click()
            assert page.locator("a.replayed-by").inner_text() == f"#{new_id}"

            page.get_by_role("link", name="DLQ").click()
            assert page.locator("td.entity", has_text=HOSTILE).count() == 1
            _snap(page, shots, "dlq")

            assert page.locator("main img").count() == 0  # the id never became an element
            assert dialogs == [], dialogs
            assert errors == [], errors  # CSP violations would show up here
        finally:
            browser.close()


def _snap(page: Any, directories: list[Path], name: str, full_page: bool = True) -> None:
    first = directories[0] / f"{name}.png"
    page.screenshot(path=str(first), full_page=full_page)
    for directory in directories[1:]:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(first, directory / f"{name}.png")
