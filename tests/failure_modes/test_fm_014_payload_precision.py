"""FM_014: a payload number past 64 bits comes back to the handler as a float.

The claim reads every job's payload on the hot path, so it is read by orjson, which is several
times faster than the standard library on small documents. But orjson reads an integer it
cannot hold in 64 bits as a float: ``123456789012345678901234567890`` arrives as
``1.2345678901234568e+29``, and a handler that sends it upstream (an invoice number, an amount
in the smallest unit, another system's id) sends a different value, with no error anywhere.
Unsafe variant: orjson alone as the payload reader (the engine's ``json_deserializer`` on
PostgreSQL, ``models.json_loads`` for the SQLite claim). Prevention: ``json_codec.json_loads``
sends any text with a run of 19 or more digits, and anything orjson refuses, to
:func:`json.loads`.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from sqlalchemy import Engine

from syncbridge.clock import FakeClock
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.models import EnqueueRequest, Job
from tests.conftest import truncate

# What a CRM or a billing system may well put in a payload.
PAYLOAD = {
    "external_id": 123456789012345678901234567890,
    "amount_minor_units": 2**64 + 1,
    "u64": 2**64 - 1,
    "i64_min": -(2**63),
    "price": 0.1,
}


@pytest.fixture
def orjson_only(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An engine whose payloads are read by orjson alone, on either backend."""
    monkeypatch.setattr("syncbridge.models.json_loads", orjson.loads)
    unsafe = make_engine(database_url, json_deserializer=orjson.loads)
    yield unsafe
    unsafe.dispose()


def claimed_payload(store: Store) -> dict[str, object]:
    store.enqueue(EnqueueRequest("noop", "inv-1", PAYLOAD, 3))
    [job] = store.claim("worker-1", ["noop"], 1, lease_seconds=60)
    assert isinstance(job, Job)
    return job.payload


def test_repro_orjson_alone_hands_the_handler_other_numbers(
    engine: Engine, orjson_only: Engine, clock: FakeClock
) -> None:
    truncate(engine)
    payload = claimed_payload(Store(orjson_only, clock))
    assert payload != PAYLOAD
    assert isinstance(payload["external_id"], float)
    assert int(payload["external_id"]) != PAYLOAD["external_id"]  # digits lost, silently
    assert int(payload["amount_minor_units"]) != PAYLOAD["amount_minor_units"]


def test_prevented_the_handler_gets_the_payload_value_for_value(store: Store) -> None:
    payload = claimed_payload(store)
    assert repr(payload) == repr(PAYLOAD)  # repr tells an int from an equal float
    [job] = store.list_jobs(limit=1)
    assert repr(job.payload) == repr(PAYLOAD)  # and what the API and the CLI read
