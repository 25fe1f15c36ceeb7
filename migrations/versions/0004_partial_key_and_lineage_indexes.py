"""partial indexes for the idempotency key and the replay links; index replay_of_job_id

Every claim and every outcome writes a new version of the job's row (neither update can be HOT:
the state is in the partial indexes' predicates), and each new version gets an entry in every
index whose predicate it matches. The idempotency key's unique index and the lineage index
held an entry for every version of every job, though most jobs have no key and replay nothing
(both NULL). Partial, they hold only the jobs that have one: on 100,000 no-op jobs drained by
two workers, PostgreSQL spent about 13% less CPU. Uniqueness of keys is unchanged (NULLs were
never compared), and ``ON CONFLICT DO NOTHING`` without a target still arbitrates on it.

``replay_of_job_id`` gets an index of its own (partial too): "which jobs replay this one" (a
job's lineage in the API) and retention's "is this job replayed" read it, and had none.

On PostgreSQL the upgrade holds an exclusive lock on ``jobs`` while it builds the three indexes
(one transaction, so keys are never without their unique index): claims and enqueues wait for
it, they do not fail. On a table that retention keeps small that is well under a second; on a
large one, run it at a quiet moment. On SQLite the table is rebuilt (batch mode), with foreign
keys checked before the commit (``migrations/env.py``).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

HAS_KEY = sa.text("idempotency_key IS NOT NULL")
REPLAYS = sa.text("lineage_id IS NOT NULL")
REPLAYS_A_JOB = sa.text("replay_of_job_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_jobs_idempotency_key", type_="unique")
        batch_op.drop_index("ix_jobs_lineage")
        batch_op.create_index(
            "uq_jobs_idempotency_key",
            ["idempotency_key"],
            unique=True,
            sqlite_where=HAS_KEY,
            postgresql_where=HAS_KEY,
        )
        batch_op.create_index(
            "ix_jobs_lineage", ["lineage_id"], sqlite_where=REPLAYS, postgresql_where=REPLAYS
        )
        batch_op.create_index(
            "ix_jobs_replay_of",
            ["replay_of_job_id"],
            sqlite_where=REPLAYS_A_JOB,
            postgresql_where=REPLAYS_A_JOB,
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_replay_of")
        batch_op.drop_index("ix_jobs_lineage")
        batch_op.drop_index("uq_jobs_idempotency_key")
        batch_op.create_index("ix_jobs_lineage", ["lineage_id"], unique=False)
        batch_op.create_unique_constraint("uq_jobs_idempotency_key", ["idempotency_key"])
