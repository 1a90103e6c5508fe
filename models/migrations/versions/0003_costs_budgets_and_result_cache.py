"""costs, budgets and result cache

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 22:02:53.293793
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("daily_nusd", sa.BigInteger(), nullable=True),
        sa.Column("monthly_nusd", sa.BigInteger(), nullable=True),
        sa.Column("reserved_nusd", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("spent_day_nusd", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("spent_month_nusd", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant"),
    )
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cost_nusd", sa.BigInteger(), nullable=True))

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("estimate", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("cost_nusd", sa.BigInteger(), nullable=True))
        # Existing rows reserved nothing.
        batch_op.add_column(
            sa.Column("reserved_nusd", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("cache_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("cached_from", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_cache_key"), ["cache_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_cache_key"))
        batch_op.drop_column("cached_from")
        batch_op.drop_column("cache_key")
        batch_op.drop_column("reserved_nusd")
        batch_op.drop_column("cost_nusd")
        batch_op.drop_column("estimate")

    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("cost_nusd")

    op.drop_table("budgets")
