"""Fixtures for the API: the app over the ``store`` fixture (SQLite and PostgreSQL), a client,
and a client logged in to the admin UI."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from syncbridge.api import create_app
from syncbridge.api.auth import Sessions
from syncbridge.config import Settings
from syncbridge.db.queries import Store
from syncbridge.plugins import load_registry
from syncbridge.services import Services
from tests.api.support import TOKEN, client_for


@pytest.fixture
def services(store: Store) -> Services:
    return Services(store, load_registry(["noop"]), Settings(admin_token=TOKEN))


@pytest.fixture
def sessions(store: Store) -> Sessions:
    return Sessions(clock=store.clock)


@pytest.fixture
def app(services: Services, sessions: Sessions) -> FastAPI:
    return create_app(services, sessions=sessions)


@pytest.fixture
def client(app: FastAPI) -> Iterator[httpx.Client]:
    with client_for(app) as client:
        yield client


@pytest.fixture
def browser(app: FastAPI, sessions: Sessions) -> Iterator[httpx.Client]:
    """A client with a UI session, started from a one-time login link."""
    with client_for(app) as client:
        response = client.get(f"/ui/login?token={sessions.mint_login_code()}")
        assert response.status_code == 303, response.text
        yield client
