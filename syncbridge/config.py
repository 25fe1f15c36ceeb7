"""Settings: CLI flag > environment (``SYNCBRIDGE_*``) > TOML config file > default.

Parsing and validation are pydantic-settings'; this module only says what the settings are and
turns a validation failure into one line that names the offending setting.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_PATH = Path("config/syncbridge.toml")
ENV_PREFIX = "SYNCBRIDGE_"


# The longest duration any setting takes: 100 years. Beyond that, times computed from it
# overflow (a datetime past year 9999, a wait longer than threading.TIMEOUT_MAX) in the thread
# that uses it, long after start-up said the setting was fine.
MAX_SECONDS = 100 * 365 * 86400


class Settings(BaseSettings):
    # allow_inf_nan=False: "inf" passes gt=0 yet breaks every timedelta made from it.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, allow_inf_nan=False
    )

    database_url: str = "sqlite:///./syncbridge.db"
    job_max_retries_default: int = Field(3, ge=0, le=1000)
    job_backoff_seconds_base: float = Field(2.0, ge=0, le=MAX_SECONDS)
    job_backoff_seconds_cap: float = Field(3600.0, gt=0, le=MAX_SECONDS)
    job_lease_seconds: float = Field(60.0, gt=0, le=MAX_SECONDS)
    job_timeout_seconds: float = Field(300.0, gt=0, le=MAX_SECONDS)
    crm_url: str = "http://127.0.0.1:8101"
    billing_url: str = "http://127.0.0.1:8102"
    upstream_timeout_seconds: float = Field(10.0, gt=0, le=MAX_SECONDS)
    admin_token: str | None = None
    log_format: Literal["json", "console"] | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    plugins: str | None = None
    shutdown_grace_seconds: float = Field(30.0, ge=0, le=MAX_SECONDS)
    poll_interval_seconds: float = Field(0.5, gt=0, le=MAX_SECONDS)
    # SQLite wake-ups (db/sqlite_watch.py): the watcher's wait after a commit, doubling while
    # nothing is committed up to the slowest.
    sqlite_poll_fastest_seconds: float = Field(0.001, gt=0, le=MAX_SECONDS)
    sqlite_poll_slowest_seconds: float = Field(0.05, gt=0, le=MAX_SECONDS)
    rescue_interval_seconds: float = Field(5.0, gt=0, le=MAX_SECONDS)
    reconcile_interval_seconds: float = Field(60.0, gt=0, le=MAX_SECONDS)
    # A job is asked about only this long after it finished: an attempt given up on may still
    # have a request on its way (the client's timeout applies to connecting, sending and
    # reading each) or queued upstream. A margin, not a bound: see Store.unreconciled.
    reconcile_settle_seconds: float = Field(30.0, ge=0, le=MAX_SECONDS)
    # Retention: workers delete finished jobs older than this (unset: keep everything).
    retention_seconds: float | None = Field(None, gt=0, le=MAX_SECONDS)
    prune_interval_seconds: float = Field(3600.0, gt=0, le=MAX_SECONDS)

    @field_validator("sqlite_poll_slowest_seconds")
    @classmethod
    def _slowest_not_below_fastest(cls, slowest: float, info: ValidationInfo) -> float:
        fastest = info.data.get("sqlite_poll_fastest_seconds")  # absent when itself invalid
        if fastest is not None and slowest < fastest:
            raise ValueError(
                f"must be at least SYNCBRIDGE_SQLITE_POLL_FASTEST_SECONDS ({fastest!r})"
            )
        return slowest

    @property
    def plugin_filter(self) -> list[str] | None:
        if self.plugins is None or self.plugins == "":  # unset, or set to nothing: all
            return None
        return [name.strip() for name in self.plugins.split(",") if name.strip()]


class ConfigError(Exception):
    """A setting has a bad value; the message names the setting."""


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    from_env = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path} (from {ENV_PREFIX}CONFIG)")
        return path
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_settings(config_file: str | os.PathLike[str] | None = None, **flags: Any) -> Settings:
    """Build settings; ``flags`` are CLI values, ``None`` meaning "not given"."""
    toml_path = resolve_config_path(config_file)

    class _Settings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if toml_path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
            return tuple(sources)

    try:
        return _Settings(**{key: value for key, value in flags.items() if value is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {toml_path} is not valid TOML: {exc}") from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        parts.append(f"{ENV_PREFIX}{name.upper()}: {error['msg']} (got {error.get('input')!r})")
    return "invalid setting: " + "; ".join(parts)
