"""Fixtures for the failure-mode tests (the database fixtures come from ``tests/conftest.py``)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from syncbridge.db.queries import Store
from tests.conftest import truncate


@pytest.fixture
def live_store(engine: Engine) -> Store:
    """Empty tables and the system clock (the database's own on PostgreSQL): for scenarios that
    run the real worker loop, which cannot share an injected clock."""
    truncate(engine)
    return Store(engine)
