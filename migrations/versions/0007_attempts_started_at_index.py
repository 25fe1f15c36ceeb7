"""attempts: an index on started_at for the dashboard's activity chart

The chart counted attempts by finished_at with no index: a scan of the whole table on every
dashboard load (130-150 ms with 2,000,000 attempts on PostgreSQL, growing with the table).
Indexing finished_at would make the attempt's closing update non-HOT again (migration 0006), so
the chart counts attempts by start instead, and started_at (written once, at claim) is indexed.

On PostgreSQL the index is BRIN with autosummarize: 32 kB for 2,000,000 attempts, and an insert
into the newest, unsummarized pages costs nothing; the chart's read went from 130-150 ms to
about 3 ms there. SQLite gets a B-tree.

The build reads the table once while holding a SHARE lock on attempts, so claims (which insert
attempts) wait for it: 0.2 s for 2,000,000 rows measured here.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_attempts_started_at",
        "attempts",
        ["started_at"],
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    )


def downgrade() -> None:
    op.drop_index("ix_attempts_started_at", table_name="attempts")
