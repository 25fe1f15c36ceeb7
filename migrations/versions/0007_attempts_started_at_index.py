"""attempts: an index on started_at for the dashboard's activity chart

The chart counted attempts by finished_at with no index: a scan of the whole table on every
dashboard load (130-150 ms with 2,000,000 attempts on PostgreSQL, 155-176 ms on SQLite, growing
with the table). Indexing finished_at would make the attempt's closing update non-HOT again
(migration 0006), so the chart counts attempts by start instead, and started_at (written once,
at claim) is indexed: the read takes about 4 ms on PostgreSQL and 15 ms on SQLite there.

A B-tree, not BRIN: BRIN would be smaller and nearly free to maintain while the table is
append-only, but retention (`prune`) deletes old attempts and new ones reuse the space, so the
table's physical order stops following started_at and a BRIN index would end up reading most of
it. New keys always go to the right edge of a B-tree, its cheapest insert.

The build holds a SHARE lock on attempts, so claims (which insert attempts) wait for it while it
reads the table once: 0.5 s for 2,000,000 attempts on PostgreSQL here (an index of 43 MB).

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
    op.create_index("ix_attempts_started_at", "attempts", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_attempts_started_at", table_name="attempts")
