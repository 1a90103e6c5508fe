"""service tiers and the Gemini Batch lane

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JOB_COLUMNS = (
    "tier",
    "lane",
    "deadline_at",
    "served_tier",
    "standard_cost_nusd",
    "gemini_batch_id",
)
_ATTEMPT_COLUMNS = ("requested_tier", "served_tier", "gemini_batch_id")


def upgrade() -> None:
    # Plain ADD COLUMNs (nullable or with a server default): SQLite alters `jobs` in place
    # instead of copying the table. No foreign key to gemini_batches for the same reason.
    op.add_column(
        "jobs", sa.Column("tier", sa.String(length=16), nullable=False, server_default="standard")
    )
    op.add_column(
        "jobs", sa.Column("lane", sa.String(length=16), nullable=False, server_default="standard")
    )
    op.add_column("jobs", sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("served_tier", sa.String(length=16), nullable=True))
    op.add_column("jobs", sa.Column("standard_cost_nusd", sa.BigInteger(), nullable=True))
    op.add_column("jobs", sa.Column("gemini_batch_id", sa.String(length=36), nullable=True))
    op.create_index(
        "ix_jobs_lane_status_model", "jobs", ["lane", "status", "model", "created_at"], unique=False
    )
    op.create_index("ix_jobs_gemini_batch_id", "jobs", ["gemini_batch_id"], unique=False)
    # Turnarounds are measured each lane tick over recently finished jobs.
    op.create_index("ix_jobs_status_finished", "jobs", ["status", "finished_at"], unique=False)

    op.add_column("attempts", sa.Column("requested_tier", sa.String(length=16), nullable=True))
    op.add_column("attempts", sa.Column("served_tier", sa.String(length=16), nullable=True))
    op.add_column("attempts", sa.Column("gemini_batch_id", sa.String(length=36), nullable=True))

    op.create_table(
        "gemini_batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("identity", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("gemini_name", sa.String(length=100), nullable=True),
        sa.Column("input_mode", sa.String(length=8), nullable=False),
        sa.Column("input_file", sa.String(length=100), nullable=True),
        sa.Column("output_file", sa.String(length=100), nullable=True),
        sa.Column("job_count", sa.Integer(), nullable=False),
        sa.Column("request_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("gemini_state", sa.String(length=32), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.Column("gemini_update_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claim", sa.String(length=32), nullable=True),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("resends", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("gemini_name", name="uq_gemini_batches_name"),
    )
    op.create_index(
        "ix_gemini_batches_identity_state",
        "gemini_batches",
        ["identity", "state"],
        unique=False,
    )
    op.create_table(
        "tier_turnarounds",
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("p50_s", sa.Float(), nullable=False),
        sa.Column("p90_s", sa.Float(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", "tier"),
    )


def downgrade() -> None:
    op.drop_table("tier_turnarounds")
    op.drop_index("ix_gemini_batches_identity_state", table_name="gemini_batches")
    op.drop_table("gemini_batches")
    op.drop_index("ix_jobs_status_finished", table_name="jobs")
    op.drop_index("ix_jobs_gemini_batch_id", table_name="jobs")
    op.drop_index("ix_jobs_lane_status_model", table_name="jobs")
    # SQLite drops columns only by copying the table: batch mode does that there.
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        for name in _ATTEMPT_COLUMNS:
            batch_op.drop_column(name)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name in _JOB_COLUMNS:
            batch_op.drop_column(name)
