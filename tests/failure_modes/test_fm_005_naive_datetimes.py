"""FM_005: SQLite hands ``DateTime(timezone=True)`` back naive and drops the offset on the way in.

Unsafe variant: a lease column typed ``DateTime(timezone=True)``. Read back, the value cannot be
compared with an aware "now" (``TypeError``); written from a clock that is not in UTC, it keeps
the local wall time and forgets the offset, so an expired lease still looks valid, in Python and
in SQL. Prevention: ``UTCDateTime`` (``db/types.py``) on every time column: UTC stored, aware UTC
returned, naive input refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, Table, insert, select
from sqlalchemy.exc import StatementError

from syncbridge.clock import FakeClock
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.states import JobState
from tests.conftest import truncate
from tests.failure_modes.support import request, violations

PLUS_TWO = timezone(timedelta(hours=2))
NOW_UTC = datetime(2030, 1, 1, 11, 0, tzinfo=UTC)
EXPIRED_AT = datetime(2030, 1, 1, 12, 0, tzinfo=PLUS_TWO)  # 10:00 UTC: an hour ago

naive_metadata = MetaData()
naive_leases = Table(
    "naive_leases",
    naive_metadata,
    Column("id", Integer, primary_key=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=False),
)


def test_repro_plain_timezone_datetime_on_sqlite_breaks_lease_math(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fm005.db'}")
    naive_metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(naive_leases).values(id=1, lease_expires_at=EXPIRED_AT))
        stored = conn.execute(select(naive_leases.c.lease_expires_at)).scalar_one()
        # The rescuer's query: which leases have expired by now?
        expired_in_sql = conn.execute(
            select(naive_leases.c.id).where(naive_leases.c.lease_expires_at < NOW_UTC)
        ).all()
    engine.dispose()

    assert stored.tzinfo is None  # the zone is gone
    with pytest.raises(TypeError, match="offset-naive and offset-aware"):
        _ = stored < NOW_UTC
    assumed_utc = stored.replace(tzinfo=UTC)  # the obvious patch is off by the lost offset
    assert assumed_utc - EXPIRED_AT == timedelta(hours=2)
    assert assumed_utc > NOW_UTC  # an hour-old expired lease looks valid for another hour
    assert expired_in_sql == []  # so the rescuer would not recover it (INV_005)


def test_prevented_utc_datetime_keeps_instants_on_both_backends(engine: Engine) -> None:
    truncate(engine)
    clock = FakeClock(start=EXPIRED_AT - timedelta(minutes=1))  # a clock in +02:00
    store = Store(engine, clock)
    run_at = datetime(2030, 6, 1, 17, 0, tzinfo=timezone(timedelta(hours=5)))
    later = store.enqueue(request("later", run_at=run_at)).job
    assert store.get_job(later.id).next_run_at == run_at
    assert store.get_job(later.id).next_run_at.utcoffset() == timedelta(0)

    store.enqueue(request("now"))
    [job] = store.claim("w1", ["noop"], 1, lease_seconds=60)
    lease = store.get_job(job.id).lease_expires_at
    assert lease is not None and lease.utcoffset() == timedelta(0)
    assert lease == clock.now() + timedelta(seconds=60)  # the same instant
    assert lease > clock.now()  # aware on both sides: comparable

    clock.advance(59)
    assert store.rescue() == []
    clock.advance(2)
    [rescued] = store.rescue()
    assert rescued.job_id == job.id and rescued.state is JobState.PENDING
    assert violations(store, lease_grace_seconds=0) == {}

    with pytest.raises(StatementError, match="naive datetime"):
        store.enqueue(request("naive", run_at=datetime(2030, 1, 1, 12, 0)))
