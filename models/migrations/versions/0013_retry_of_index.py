"""index of jobs by retry_of (a retry finds the job that replaced it in its batch item)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 21:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # CONCURRENTLY on PostgreSQL: a plain CREATE INDEX on a big jobs table would hold every
    # submit until it is built. It cannot run in a transaction, hence the autocommit block
    # (SQLite ignores the option and builds the index at once).
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_jobs_tenant_retry_of", "jobs", ["tenant", "retry_of"], postgresql_concurrently=True
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_jobs_tenant_retry_of", table_name="jobs", postgresql_concurrently=True)
