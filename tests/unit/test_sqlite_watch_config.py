"""The SQLite watcher's two settings: defaults, the environment, and refusals that name the
setting (each positive, finite, and the fastest no slower than the slowest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syncbridge.config import ConfigError, load_settings

FASTEST = "SYNCBRIDGE_SQLITE_POLL_FASTEST_SECONDS"
SLOWEST = "SYNCBRIDGE_SQLITE_POLL_SLOWEST_SECONDS"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("SYNCBRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no config/syncbridge.toml here


def test_defaults() -> None:
    settings = load_settings()
    assert settings.sqlite_poll_fastest_seconds == 0.001
    assert settings.sqlite_poll_slowest_seconds == 0.05


def test_from_environment_file_and_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(FASTEST, "0.002")
    monkeypatch.setenv(SLOWEST, "0.2")
    settings = load_settings()
    assert (settings.sqlite_poll_fastest_seconds, settings.sqlite_poll_slowest_seconds) == (
        0.002,
        0.2,
    )
    path = tmp_path / "s.toml"
    path.write_text("sqlite_poll_fastest_seconds = 0.01\nsqlite_poll_slowest_seconds = 0.01\n")
    monkeypatch.delenv(FASTEST)
    monkeypatch.delenv(SLOWEST)
    from_file = load_settings(path)
    assert from_file.sqlite_poll_fastest_seconds == from_file.sqlite_poll_slowest_seconds == 0.01
    assert load_settings(path, sqlite_poll_slowest_seconds=1.0).sqlite_poll_slowest_seconds == 1.0


@pytest.mark.parametrize("name", [FASTEST, SLOWEST])
@pytest.mark.parametrize(
    ("value", "complaint"),
    [("0", "greater than 0"), ("-0.01", "greater than 0"), ("inf", "finite number")],
)
def test_each_must_be_positive_and_finite(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"invalid setting: {name}: ")
    assert complaint in message
    assert "\n" not in message


def test_fastest_above_slowest_is_refused_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FASTEST, "0.1")
    monkeypatch.setenv(SLOWEST, "0.05")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == (
        f"invalid setting: {SLOWEST}: Value error, must be at least {FASTEST} (0.1) (got '0.05')"
    )


def test_slowest_below_the_default_fastest_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SLOWEST, "0.0005")
    with pytest.raises(ConfigError, match=f"^invalid setting: {SLOWEST}: .*{FASTEST} \\(0.001\\)"):
        load_settings()
