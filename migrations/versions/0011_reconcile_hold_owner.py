"""reconcile_asks.held_by: the worker whose round holds the job

A worker's reconcile round holds the due jobs it asks about for five minutes (0009). A worker
killed mid-round left its jobs waiting out that hold. With the holder named, the other workers'
rescuers give back the holds of a worker that stopped or stopped beating, at once.

workers.alive_until: when a worker's last beat runs out (the beat's time plus that worker's own
lease; leases are set per process, so another worker's lease says nothing about it). A partial
index finds the held rows without reading the others.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import syncbridge.db.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reconcile_asks", sa.Column("held_by", sa.String(length=200), nullable=True))
    op.create_index(
        "ix_reconcile_asks_held_by",
        "reconcile_asks",
        ["held_by"],
        postgresql_where=sa.text("held_by IS NOT NULL"),
        sqlite_where=sa.text("held_by IS NOT NULL"),
    )
    op.add_column(
        "workers",
        sa.Column("alive_until", syncbridge.db.types.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch_op:
        batch_op.drop_column("alive_until")
    op.drop_index("ix_reconcile_asks_held_by", table_name="reconcile_asks")
    with op.batch_alter_table("reconcile_asks") as batch_op:
        batch_op.drop_column("held_by")
