"""reconcile_asks.held_by: the worker whose round holds the job

A worker's reconcile round holds the due jobs it asks about for five minutes (0009). A worker
killed mid-round left its jobs waiting out that hold. With the holder named, the other workers'
rescuers give back the holds of a worker that stopped or stopped beating, at once.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reconcile_asks", sa.Column("held_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reconcile_asks") as batch_op:
        batch_op.drop_column("held_by")
