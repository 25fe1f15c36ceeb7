"""Active jobs found by entity through their unique index; ix_jobs_entity (PostgreSQL) only
for finished ones

A claim writes a new version of each job row it takes (pending → running), never HOT, and each
version gets an entry in every index whose predicate it matches: the entity index took one at
enqueue, one per claim, one per retry and one at the end. ``uq_jobs_active_entity`` already
holds every active job; with the entity as its first column it also answers "the active jobs
of this entity", and on PostgreSQL ``ix_jobs_entity`` now holds only finished jobs: one entry
per job instead of one per state change. ``Store.list_jobs`` reads both.

SQLite keeps the full entity index (its planner does not combine partial indexes for an OR as
reliably, and its claim is not where its time goes); the unique index is reordered there too.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ACTIVE = sa.text("state IN ('pending', 'running')")
FINISHED = sa.text("state NOT IN ('pending', 'running')")


def _unique_active(columns: list[str]) -> None:
    op.drop_index("uq_jobs_active_entity", table_name="jobs")
    op.create_index(
        "uq_jobs_active_entity",
        "jobs",
        columns,
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )


def upgrade() -> None:
    _unique_active(["entity_id", "job_type"])
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_jobs_entity", table_name="jobs")
        op.create_index("ix_jobs_entity", "jobs", ["entity_id"], postgresql_where=FINISHED)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_jobs_entity", table_name="jobs")
        op.create_index("ix_jobs_entity", "jobs", ["entity_id"])
    _unique_active(["job_type", "entity_id"])
