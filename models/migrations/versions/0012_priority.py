"""priority of jobs and batches (0..9, 9 first within a tenant; fair share, issue 23)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs with a server default: SQLite alters the tables in place, and the
    # rows already there read priority 5 (the default of VISIONQ_DEFAULT_PRIORITY). The
    # CHECK goes inline in the column (SQLite's ADD COLUMN takes it; no table copy): a
    # priority outside 0..9 (a hand-written UPDATE, a future import) is refused by the
    # database instead of stopping fair share's push for that job.
    for table in ("jobs", "batches"):
        check = sa.CheckConstraint("priority BETWEEN 0 AND 9", name=f"ck_{table}_priority")
        op.add_column(
            table,
            sa.Column("priority", sa.SmallInteger(), check, nullable=False, server_default="5"),
        )


def downgrade() -> None:
    for table in ("batches", "jobs"):
        with op.batch_alter_table(table) as batch:
            # SQLite copies the table: the CHECK on the column would be copied without it.
            batch.drop_constraint(f"ck_{table}_priority", type_="check")
            batch.drop_column("priority")
