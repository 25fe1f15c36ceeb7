"""``syncbridge serve`` and the app factory: the printed login link, the generated token, the
refusal to expose a generated token on a non-loopback address, and readiness."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from syncbridge.api import create_app
from syncbridge.api.auth import is_loopback
from syncbridge.cli.app import App
from syncbridge.cli.main import cli
from syncbridge.cli.serve import _base_url  # importing it registers the command
from syncbridge.services import Services
from tests.api.support import client_for
from tests.helpers import free_port
from tests.processes import run_cli, stop, syncbridge_env, wait_for


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::"])
def test_serve_refuses_a_public_host_without_a_token(host: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["--database-url", f"sqlite:///{tmp_path / 'x.db'}", "serve", "--host", host],
        env={"SYNCBRIDGE_ADMIN_TOKEN": None, "SYNCBRIDGE_CONFIG": None},
    )
    assert result.exit_code == 2
    assert "refusing to bind" in result.output and "SYNCBRIDGE_ADMIN_TOKEN" in result.output


def test_create_app_needs_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNCBRIDGE_ADMIN_TOKEN", raising=False)
    with pytest.raises(ValueError, match="no admin token"):
        create_app(App(flags={"database_url": f"sqlite:///{tmp_path / 'x.db'}"}))


@pytest.mark.parametrize(
    "url",
    ["sqlite:///{tmp}/empty.db", "postgresql+psycopg://nobody@127.0.0.1:1/none"],
    ids=["unmigrated", "unreachable"],
)
def test_ready_is_503_until_the_database_is(url: str, tmp_path: Path) -> None:
    app = create_app(App(flags={"database_url": url.format(tmp=tmp_path)}), admin_token="t")
    with client_for(app) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        assert "migrate" in ready.json()["detail"] or "unreachable" in ready.json()["detail"]
        assert client.get("/api/jobs").status_code == 503
        assert client.get("/ui/").status_code == 503


@pytest.mark.processes
def test_serve_prints_a_one_time_login_link_and_a_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    assert run_cli(url, "migrate").returncode == 0
    port = free_port()
    out = tmp_path / "out.txt"
    with open(out, "w") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "syncbridge", "serve", "--port", str(port)],
            env=syncbridge_env(url),
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: "one-time link" in out.read_text(), 30, "the login link")
            text = out.read_text()
            token = re.search(r"admin token .*: (\S+)", text).group(1)  # type: ignore[union-attr]
            login = re.search(r"one-time link\): (\S+)", text).group(1)  # type: ignore[union-attr]
            base = f"http://127.0.0.1:{port}"
            assert login.startswith(f"{base}/ui/login?token=")
            wait_for(lambda: _up(base), 30, "serve to answer")
            with httpx.Client(base_url=base) as client:
                body = {"entity_id": "c_1"}
                assert client.post("/api/jobs/noop", json=body).status_code == 401
                auth = {"Authorization": f"Bearer {token}"}
                assert client.post("/api/jobs/noop", json=body, headers=auth).status_code == 201
                first = client.get(login)
                assert first.status_code == 303 and "syncbridge_session" in client.cookies
                client.cookies.clear()
                assert client.get(login).status_code == 401  # the spent link: one wrong answer
                # The real server's TCP peer is what gets throttled (FM_030), whatever address
                # the client claims: nine more wrong tokens, then even the right one waits.
                for n in range(9):
                    wrong = {"Authorization": "Bearer wrong", "X-Forwarded-For": f"192.0.2.{n}"}
                    refused = client.post("/api/jobs/noop", json=body, headers=wrong)
                    assert refused.status_code == 401
                throttled = client.post("/api/jobs/noop", json=body, headers=auth)
                assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
        finally:
            stop(process)  # type: ignore[arg-type]


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health").status_code == 200
    except httpx.TransportError:
        return False


def test_an_unexpected_error_is_a_500_with_a_correlation_id() -> None:
    def broken() -> Services:
        raise RuntimeError("boom")

    with client_for(create_app(broken, admin_token="t")) as client:
        response = client.get("/api/jobs", headers={"X-Correlation-ID": "trace-500"})
    assert response.status_code == 500 and response.json() == {"detail": "internal error"}
    assert response.headers["x-correlation-id"] == "trace-500"
    assert "boom" not in response.text


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://localhost:8000"),
        ("::", "http://localhost:8000"),
        ("::1", "http://[::1]:8000"),
        ("api.internal", "http://api.internal:8000"),
    ],
)
def test_the_printed_url_is_one_to_open(host: str, url: str) -> None:
    assert _base_url(host, 8000) == url
