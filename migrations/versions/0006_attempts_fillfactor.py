"""attempts: fillfactor 50 on PostgreSQL, so an attempt's one update is HOT

An attempt row is written at claim and updated once, when the attempt ends (finished_at, outcome,
error). None of those columns is indexed, so the update can be HOT (no new index entries, less
WAL), but only if the row's page has room for the new version. At the default fillfactor (100)
claims fill every page and about 10% of those updates were HOT; at 50 about 91% are. Measured
with `docs/perf/cpu_per_job.sh 2 100000`, alternating: PostgreSQL CPU 43-46 -> 40-43 µs a job.
Space: inserts leave half of each page for the updated versions, which pruning then reclaims,
so the table stays within about twice its packed size.

Existing pages keep their layout; the setting applies to pages written from now on. Setting
fillfactor takes a SHARE UPDATE EXCLUSIVE lock (PostgreSQL's ALTER TABLE reference), which does
not block reads or writes, so running workers go on claiming and recording while it runs. SQLite
has no such setting: nothing to do there.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FILLFACTOR = 50


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE attempts SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE attempts RESET (fillfactor)")
