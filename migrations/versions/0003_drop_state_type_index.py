"""drop ix_jobs_state_type: it made the claim sort every pending job

With it, PostgreSQL planned the claim as "all pending jobs of these types by (state, job_type),
then sort" whenever its statistics lagged behind a burst of enqueues (a bulk load, a backlog):
11 ms for a claim of 80 among 8,000 pending jobs, and a sort of the whole backlog per claim with
a million. Without it the only matching index is the partial ``ix_jobs_runnable`` in claim order,
read until the limit (4.5 ms for the same claim, whatever the backlog). Every job update also
maintains one index less. Operator queries by state read the table; retention keeps it small.

On PostgreSQL the jobs table also gets autovacuum thresholds fit for a queue (1% of the rows
changed instead of 10-20%): claimed jobs leave dead entries in the runnable index until a vacuum,
and a burst of enqueues needs fresh statistics for the claim to be planned on that index.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


QUEUE_AUTOVACUUM = "autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_state_type")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE jobs SET ({QUEUE_AUTOVACUUM})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE jobs RESET (autovacuum_vacuum_scale_factor, "
            "autovacuum_analyze_scale_factor)"
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_state_type", ["state", "job_type"], unique=False)
