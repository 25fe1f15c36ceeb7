"""Schemathesis against the app's own OpenAPI document, on SQLite and PostgreSQL: generated
requests, valid and invalid, never get a 5xx, and every response conforms to the schema (status
code documented, body valid, content type and headers as declared).

Driven through ``operation.as_strategy()`` and Hypothesis directly rather than the pytest plugin
(its lazy-fixture mode does not run under pytest 9): at most ``EXAMPLES`` cases per operation and
mode (``SYNCBRIDGE_SCHEMA_EXAMPLES``, default 20)."""

from __future__ import annotations

import os

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode

from syncbridge.db.queries import Store
from tests.api.support import AUTH, dead_job, enqueue, failed_job

EXAMPLES = int(os.environ.get("SYNCBRIDGE_SCHEMA_EXAMPLES", "20"))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_schema(app: FastAPI, store: Store, mode: GenerationMode) -> None:
    # Something to find: jobs in every state an action can meet.
    dead_job(store, "c_dead")
    failed_job(store, "c_failed")
    enqueue(store, "c_pending")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    unsatisfiable: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: Case) -> None:
            case.call_and_validate(headers=AUTH)

        try:
            conforms()
        except Unsatisfiable:
            # No parameters and no body (``/health``): there is nothing to make invalid.
            assert mode is GenerationMode.NEGATIVE, operation.label
            unsatisfiable.append(operation.label)
    assert len(unsatisfiable) < len(operations) // 2, unsatisfiable
