"""ledger: a job may file several effects (one row each)

A success reports every effect its handler applied (``Success.also_applied``: the invoice job's
customer upsert beside its invoice, FM_033), so ``ledger.job_id`` is no longer unique; it keeps
an index for the job's rows. Effect keys stay unique. SQLite rebuilds the table. On PostgreSQL
the index is built in the migration's transaction, so ledger writes (successes that file an
effect) wait for it: a short wait, one row per effect (a bounded table beside ``jobs``), but
run it when workers are stopped or quiet on a very large ledger.

Downgrading needs each job to have at most one row again: otherwise it is refused before the
ledger changes, naming the jobs.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger") as batch_op:
        batch_op.drop_constraint("uq_ledger_job_id", type_="unique")
        batch_op.create_index("ix_ledger_job_id", ["job_id"])


def downgrade() -> None:
    # Refused before anything changes (SQLite's rebuild would stop halfway through its copy).
    shared = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT job_id FROM ledger GROUP BY job_id HAVING count(*) > 1 ORDER BY job_id"
                " LIMIT 10"
            )
        )
        .scalars()
        .all()
    )
    if shared:
        raise RuntimeError(
            "cannot downgrade below 0010: these jobs filed more than one effect in the ledger,"
            f" which 0009 allows one row per job for: {shared}"
        )
    with op.batch_alter_table("ledger") as batch_op:
        batch_op.drop_index("ix_ledger_job_id")
        batch_op.create_unique_constraint("uq_ledger_job_id", ["job_id"])
