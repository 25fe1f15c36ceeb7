"""idempotency_keys: every key given, and the job it answered with

A key was recorded only on the job it created (jobs.idempotency_key). An enqueue whose key met
the entity's active job got that job back, but its key was recorded nowhere, so the same
request sent again after that job finished made a new job: one key, two jobs. This table holds
every key (its primary key is the one place keys are unique) with the job it answered with and
the parameters it came with; the existing keys are copied in.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import syncbridge.db.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("job_id", Id, nullable=False),
        sa.Column("params_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", syncbridge.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_idempotency_keys_job_id_jobs")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_job", "idempotency_keys", ["job_id"])
    op.execute(
        "INSERT INTO idempotency_keys (key, job_id, params_hash, created_at) "
        "SELECT idempotency_key, id, params_hash, created_at FROM jobs "
        "WHERE idempotency_key IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_job", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
