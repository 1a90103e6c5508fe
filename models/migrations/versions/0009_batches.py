"""batches and batch items

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # New tables only: `jobs` is not altered (a batch item points at its latest job).
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("response_schema", sa.JSON(), nullable=True),
        sa.Column("defaults_hash", sa.String(length=64), nullable=False),
        sa.Column("expected_items", sa.Integer(), nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("estimate_min_nusd", sa.BigInteger(), nullable=False),
        sa.Column("estimate_max_nusd", sa.BigInteger(), nullable=False),
        sa.Column("estimate_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("prior_cost_nusd", sa.BigInteger(), nullable=False),
        sa.Column("prior_tokens", sa.BigInteger(), nullable=False),
        sa.Column("images_received", sa.Integer(), nullable=False),
        sa.Column("images_referenced", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "name", name="uq_batches_tenant_name"),
    )
    op.create_index(
        "ix_batches_tenant_created", "batches", ["tenant", "created_at", "id"], unique=False
    )
    op.create_table(
        "batch_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("reruns", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("batch_id", "key", name="uq_batch_items_batch_key"),
    )
    op.create_index("ix_batch_items_batch_id_id", "batch_items", ["batch_id", "id"], unique=False)
    op.create_index("ix_batch_items_job_id", "batch_items", ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_batch_items_job_id", table_name="batch_items")
    op.drop_index("ix_batch_items_batch_id_id", table_name="batch_items")
    op.drop_table("batch_items")
    op.drop_index("ix_batches_tenant_created", table_name="batches")
    op.drop_table("batches")
