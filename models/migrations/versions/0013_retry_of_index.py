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
    # In the migration's transaction, not CONCURRENTLY: that waits for every other running
    # statement, the ones of processes waiting for the migration lock too (they would wait
    # for each other forever). On a big jobs table an operator can build it beforehand with
    # CREATE INDEX CONCURRENTLY (README: `visionq db upgrade`); IF NOT EXISTS then skips it here.
    op.create_index("ix_jobs_tenant_retry_of", "jobs", ["tenant", "retry_of"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant_retry_of", table_name="jobs")
