"""webhooks: endpoints, secrets, the event outbox, deliveries and attempts; callback URLs;
batch end times; budget alert levels

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 12:10:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BUDGET_COLUMNS = (
    "alert_ratios",
    "alert_day",
    "alert_day_level",
    "alert_month",
    "alert_month_level",
)

# Batches that ended before this revision are marked ended, so the relay's completion scan
# does not walk (or announce) the whole history once.
_MARK_ENDED = """
UPDATE batches SET ended_at = updated_at
WHERE state IN ('closed', 'cancelled')
  AND NOT EXISTS (
    SELECT 1 FROM batch_items JOIN jobs ON jobs.id = batch_items.job_id
    WHERE batch_items.batch_id = batches.id AND jobs.status IN ('queued', 'running')
  )
"""


def _dt(name: str, *, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # Plain ADD COLUMNs (nullable or with a server default): SQLite alters the tables in
    # place. Foreign keys only between the new tables.
    op.add_column("jobs", sa.Column("callback_url", sa.String(length=2048), nullable=True))
    op.add_column("batches", sa.Column("callback_url", sa.String(length=2048), nullable=True))
    op.add_column("batches", _dt("ended_at"))
    op.create_index("ix_batches_ended_state", "batches", ["ended_at", "state"], unique=False)
    op.execute(_MARK_ENDED)
    op.add_column("budgets", sa.Column("alert_ratios", sa.JSON(), nullable=True))
    op.add_column("budgets", sa.Column("alert_day", sa.String(length=10), nullable=True))
    op.add_column(
        "budgets", sa.Column("alert_day_level", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("budgets", sa.Column("alert_month", sa.String(length=7), nullable=True))
    op.add_column(
        "budgets",
        sa.Column("alert_month_level", sa.Integer(), nullable=False, server_default="0"),
    )

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, server_default="endpoint"),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("event_mask", sa.Integer(), nullable=False),
        sa.Column("include_result", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        _dt("disabled_at"),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("disabled_by", sa.String(length=16), nullable=True),
        _dt("failing_since"),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
        _dt("last_success_at"),
        _dt("last_failure_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _dt("created_at", nullable=False),
        _dt("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_endpoints_tenant", "webhook_endpoints", ["tenant", "kind"])
    op.create_table(
        "webhook_secrets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("endpoint_id", sa.String(length=36), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        _dt("created_at", nullable=False),
        _dt("expires_at"),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_secrets_endpoint", "webhook_secrets", ["endpoint_id"])
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("callback_url", sa.String(length=2048), nullable=True),
        _dt("occurred_at", nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        _dt("fanned_out_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_events_fanout", "webhook_events", ["fanned_out_at", "occurred_at"])
    op.create_index("ix_webhook_events_tenant", "webhook_events", ["tenant", "occurred_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("replays", sa.Integer(), nullable=False, server_default="0"),
        _dt("next_attempt_at", nullable=False),
        _dt("window_started_at", nullable=False),
        sa.Column("claim", sa.String(length=32), nullable=True),
        _dt("claim_expires_at"),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _dt("succeeded_at"),
        _dt("created_at", nullable=False),
        _dt("updated_at", nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["event_id"], ["webhook_events.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
    )
    op.create_index(
        "ix_webhook_deliveries_state_next", "webhook_deliveries", ["state", "next_attempt_at"]
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint",
        "webhook_deliveries",
        ["endpoint_id", "state", "created_at"],
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("replay", sa.Boolean(), nullable=False, server_default=sa.false()),
        _dt("started_at", nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["delivery_id"], ["webhook_deliveries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_webhook_attempts_endpoint", "webhook_attempts", ["endpoint_id", "started_at"]
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_attempts_delivery", table_name="webhook_attempts")
    op.drop_index("ix_webhook_attempts_endpoint", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_deliveries_endpoint", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_state_next", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhook_events_tenant", table_name="webhook_events")
    op.drop_index("ix_webhook_events_fanout", table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_index("ix_webhook_secrets_endpoint", table_name="webhook_secrets")
    op.drop_table("webhook_secrets")
    op.drop_index("ix_webhook_endpoints_tenant", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
    op.drop_index("ix_batches_ended_state", table_name="batches")
    # SQLite drops columns only by copying the table: batch mode does that there.
    with op.batch_alter_table("budgets", schema=None) as batch_op:
        for name in _BUDGET_COLUMNS:
            batch_op.drop_column(name)
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("ended_at")
        batch_op.drop_column("callback_url")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("callback_url")
