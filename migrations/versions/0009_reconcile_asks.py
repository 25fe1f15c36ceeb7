"""reconcile_asks: when reconcile next asks about a job its upstream could not answer for

The worker kept its place in memory only: each restart began again with the oldest jobs whose
upstream could not tell (a crash drill saw 32 of 53 rounds spent on them). This table holds,
for each such job, how often it was asked and when to ask next; a worker asks only the jobs
that are due. The answer deletes the row.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import syncbridge.db.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reconcile_asks",
        sa.Column("job_id", Id, nullable=False),
        sa.Column("asks", sa.Integer(), nullable=False),
        sa.Column("next_ask_at", syncbridge.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_reconcile_asks_job_id_jobs")
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_reconcile_asks")),
    )


def downgrade() -> None:
    op.drop_table("reconcile_asks")
