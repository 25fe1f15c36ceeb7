"""Shared fixtures. Every storage test runs on SQLite and PostgreSQL; each test module gets its
own PostgreSQL database (or SQLite file), and each test starts from empty tables.

PostgreSQL comes from ``SYNCBRIDGE_TEST_POSTGRES_URL`` (default: the local server). Under
``CI=true`` a missing PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from syncbridge import migrate
from syncbridge.clock import FakeClock
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.db.schema import metadata

POSTGRES_URL = os.environ.get(
    "SYNCBRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BACKENDS = ["sqlite", "postgresql"]

hypothesis_settings.register_profile("ci", max_examples=25, deadline=None)
hypothesis_settings.register_profile("dev", max_examples=50, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _admin_engine() -> Engine:
    from syncbridge.db.engine import normalise_url

    return create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason."""
    try:
        engine = _admin_engine()
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}"
    return None


def require_postgres() -> None:
    reason = postgres_available()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: PostgreSQL is required)")
    pytest.skip(reason)


def create_postgres_database(prefix: str) -> str:
    """A fresh database for one test module; returns its URL."""
    require_postgres()
    name = f"sbt_{prefix}_{uuid.uuid4().hex[:8]}".lower()
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    from syncbridge.db.engine import normalise_url

    return (
        make_url(normalise_url(POSTGRES_URL))
        .set(database=name)
        .render_as_string(hide_password=False)
    )


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _module_prefix(request: pytest.FixtureRequest) -> str:
    return request.module.__name__.rsplit(".", 1)[-1][:30]


@pytest.fixture(scope="module")
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty, unmigrated database of the backend in ``request.param``."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        path: Path = tmp_path_factory.mktemp(_module_prefix(request)) / "syncbridge.db"
        yield f"sqlite:///{path}"
        return
    url = create_postgres_database(_module_prefix(request))
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def store(engine: Engine, clock: FakeClock) -> Store:
    truncate(engine)
    return Store(engine, clock)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Any test that uses the database runs once per backend."""
    if "database_url" not in metafunc.fixturenames:
        return
    explicit = any(
        "database_url" in str(marker.args[0])
        for marker in metafunc.definition.iter_markers("parametrize")
    )
    if not explicit:
        metafunc.parametrize("database_url", BACKENDS, indirect=True, scope="module")
