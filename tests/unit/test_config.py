"""Settings: CLI flag > ``SYNCBRIDGE_*`` environment > TOML file > default, and a bad value is a
:class:`ConfigError` that names the setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syncbridge.config import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ``SYNCBRIDGE_*`` from the developer's shell, and a working directory without
    ``config/syncbridge.toml``."""
    for name in list(os.environ):
        if name.startswith("SYNCBRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_match_the_contract() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///./syncbridge.db"
    assert settings.job_max_retries_default == 3
    assert settings.job_backoff_seconds_base == 2.0
    assert settings.job_lease_seconds == 60.0
    assert settings.job_timeout_seconds == 300.0
    assert (settings.crm_url, settings.billing_url) == (
        "http://127.0.0.1:8101",
        "http://127.0.0.1:8102",
    )
    assert (settings.admin_token, settings.log_format, settings.plugins) == (None, None, None)
    assert settings.plugin_filter is None


def test_flag_beats_environment_beats_file_beats_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = toml(tmp_path / "s.toml", "job_lease_seconds = 10\njob_max_retries_default = 7\n")
    monkeypatch.setenv("SYNCBRIDGE_JOB_LEASE_SECONDS", "20")
    monkeypatch.setenv("SYNCBRIDGE_DATABASE_URL", "sqlite:///from-env.db")

    flagged = load_settings(path, job_lease_seconds=30, database_url="sqlite:///from-flag.db")
    assert (flagged.job_lease_seconds, flagged.database_url) == (30.0, "sqlite:///from-flag.db")
    assert flagged.job_max_retries_default == 7  # from the file: nothing above it set one

    unflagged = load_settings(path, job_lease_seconds=None, database_url=None)  # None: not given
    assert (unflagged.job_lease_seconds, unflagged.database_url) == (20.0, "sqlite:///from-env.db")

    monkeypatch.delenv("SYNCBRIDGE_JOB_LEASE_SECONDS")
    assert load_settings(path).job_lease_seconds == 10.0
    assert load_settings().job_lease_seconds == 60.0


def test_config_file_from_environment_and_explicit_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from_env = toml(tmp_path / "env.toml", "job_lease_seconds = 11\n")
    explicit = toml(tmp_path / "explicit.toml", "job_lease_seconds = 12\n")
    toml(tmp_path / "config" / "syncbridge.toml", "job_lease_seconds = 13\n")

    assert load_settings().job_lease_seconds == 13.0  # config/syncbridge.toml, when present
    monkeypatch.setenv("SYNCBRIDGE_CONFIG", str(from_env))
    assert load_settings().job_lease_seconds == 11.0
    assert load_settings(explicit).job_lease_seconds == 12.0  # --config beats SYNCBRIDGE_CONFIG


def test_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as explicit:
        load_settings(tmp_path / "nope.toml")
    assert str(explicit.value) == f"config file not found: {tmp_path / 'nope.toml'}"

    monkeypatch.setenv("SYNCBRIDGE_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError) as from_env:
        load_settings()
    assert str(from_env.value) == (
        f"config file not found: {tmp_path / 'gone.toml'} (from SYNCBRIDGE_CONFIG)"
    )


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("abc", "unable to parse string as a number"),
        ("-5", "greater than 0"),
        ("0", "greater than 0"),
        ("", "unable to parse string as a number"),
        ("inf", "finite number"),
        ("nan", "finite number"),
    ],
)
def test_bad_lease_from_environment_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, complaint: str
) -> None:
    monkeypatch.setenv("SYNCBRIDGE_JOB_LEASE_SECONDS", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid setting: SYNCBRIDGE_JOB_LEASE_SECONDS: ")
    assert complaint in message
    assert message.endswith(f"(got {value!r})")
    assert "\n" not in message


def test_every_duration_setting_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # A finite but huge duration passed start-up once, then overflowed a datetime or a wait in
    # the thread that used it (retention: every prune interval, forever).
    durations = [name for name in Settings.model_fields if name.endswith("_seconds")]
    assert "retention_seconds" in durations and len(durations) >= 10
    for name in durations:
        variable = f"SYNCBRIDGE_{name.upper()}"
        monkeypatch.setenv(variable, "1e300")
        with pytest.raises(ConfigError, match=f"{variable}: Input should be less than or equal"):
            load_settings()
        if name != "sqlite_poll_fastest_seconds":  # that one must stay below the slowest
            monkeypatch.setenv(variable, str(100 * 365 * 86400))
            assert getattr(load_settings(), name) == 100 * 365 * 86400
        monkeypatch.delenv(variable)


def test_bad_value_in_the_file_names_the_setting(tmp_path: Path) -> None:
    path = toml(tmp_path / "s.toml", 'job_max_retries_default = -1\nlog_format = "xml"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert (
        "SYNCBRIDGE_JOB_MAX_RETRIES_DEFAULT: Input should be greater than or equal to 0" in message
    )
    assert "SYNCBRIDGE_LOG_FORMAT: Input should be 'json' or 'console' (got 'xml')" in message


def test_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    path = toml(tmp_path / "s.toml", "job_lease_seconds = 5\njob_lease_secs = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value) == (
        "invalid setting: SYNCBRIDGE_JOB_LEASE_SECS: Extra inputs are not permitted (got 5)"
    )


def test_malformed_toml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = toml(tmp_path / "s.toml", "job_lease_seconds = [\n")
    with pytest.raises(ConfigError, match=r"^config file .*s\.toml is not valid TOML: "):
        load_settings(path)


@pytest.mark.parametrize(
    ("plugins", "expected"),
    [
        (None, None),
        ("", None),
        ("noop", ["noop"]),
        (" noop , customer,,invoice ", ["noop", "customer", "invoice"]),
    ],
)
def test_plugin_filter(
    monkeypatch: pytest.MonkeyPatch, plugins: str | None, expected: list[str] | None
) -> None:
    if plugins is not None:
        monkeypatch.setenv("SYNCBRIDGE_PLUGINS", plugins)
    assert load_settings().plugin_filter == expected


def test_plugin_filter_from_file_and_flag(tmp_path: Path) -> None:
    path = toml(tmp_path / "s.toml", 'plugins = "noop,customer"\n')
    assert load_settings(path).plugin_filter == ["noop", "customer"]
    assert load_settings(path, plugins="noop").plugin_filter == ["noop"]


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.job_lease_seconds = 1.0  # type: ignore[misc]


def test_the_example_config_file_holds_the_defaults() -> None:
    example = REPO / "config" / "syncbridge.example.toml"
    assert load_settings(example).model_dump() == Settings().model_dump()
