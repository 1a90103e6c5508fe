"""The tables of batches: a tenant's named batches and their items (issue 19), the
Gemini batch jobs of the batch lane and the measured tier turnarounds (issue 20).
Re-exported by models/tables.py, the one place code imports tables from."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from visionq.models.table_base import URL_MAX_CHARS, Base, utcnow


class BatchState(enum.StrEnum):
    OPEN = "open"  # items may be added
    CLOSED = "closed"  # no more items; its jobs run on and may be re-run
    CANCELLED = "cancelled"  # its queued jobs were cancelled; nothing more is added or re-run


class Batch(Base):
    """A named set of items of one tenant (issue 19), with the defaults its items inherit.

    Progress is computed from the items' jobs on read; the counters here are only what the
    jobs cannot tell: estimates made at add, images sent vs referenced, and the spend of
    jobs an item no longer points at (superseded by a re-run).
    """

    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("tenant", "name", name="uq_batches_tenant_name"),
        Index("ix_batches_tenant_created", "tenant", "created_at", "id"),
        # The webhook relay's completion scan: closed/cancelled batches not yet ended.
        Index("ix_batches_ended_state", "ended_at", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default=BatchState.OPEN)
    # The items' defaults, stored as given (validated when the batch was created).
    task: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(100), default=None)
    prompt: Mapped[str | None] = mapped_column(Text, default=None)
    labels: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    response_schema: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # sha256 of the canonical defaults: creating the same name again with equal defaults
    # answers the existing batch, with other defaults is refused.
    defaults_hash: Mapped[str] = mapped_column(String(64))
    # How many items the creator expects (the CLI's file count): scales the estimate.
    expected_items: Mapped[int | None] = mapped_column(default=None)
    item_count: Mapped[int] = mapped_column(default=0)
    estimate_min_nusd: Mapped[int] = mapped_column(BigInteger, default=0)
    estimate_max_nusd: Mapped[int] = mapped_column(BigInteger, default=0)
    estimate_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # Cost and tokens of jobs replaced by a re-run (items point at their latest job only).
    prior_cost_nusd: Mapped[int] = mapped_column(BigInteger, default=0)
    prior_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # Images uploaded as bytes vs given as the sha256 of an image the tenant had stored.
    images_received: Mapped[int] = mapped_column(default=0)
    images_referenced: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
    # Issue 21: the batch's callback URL (webhook_url at create), and when it ended
    # (closed or cancelled with every item's job terminal; batch.completed was written then).
    # An add or a re-run reopens it (NULL again).
    callback_url: Mapped[str | None] = mapped_column(String(URL_MAX_CHARS), default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # Issue 23: the priority its jobs get (0..9, 9 first within the tenant).
    priority: Mapped[int] = mapped_column(SmallInteger, default=5, server_default="5")


class BatchItem(Base):
    """One key of a batch and its latest job (a re-run points it at the new job; the old
    one stays, linked by ``jobs.retry_of``). ``id`` is the insertion order: pages and
    exports walk it, never ``key`` (collations differ between databases)."""

    __tablename__ = "batch_items"
    __table_args__ = (
        UniqueConstraint("batch_id", "key", name="uq_batch_items_batch_key"),
        Index("ix_batch_items_batch_id_id", "batch_id", "id"),
        Index("ix_batch_items_job_id", "job_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(1024))
    # NULL only once retention deleted the job: the item then reads as expired.
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), default=None
    )
    reruns: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class GeminiBatch(Base):
    """One Gemini batch job (batchGenerateContent) of the batch lane; models/gemini_batches.py.

    The row is written before the create is sent (state ``creating``) and matched with
    Gemini's batch afterwards by its display name (prefix + id), so a worker killed between
    the two leaves neither an orphan nor a double.
    """

    __tablename__ = "gemini_batches"
    __table_args__ = (
        UniqueConstraint("gemini_name", name="uq_gemini_batches_name"),
        Index("ix_gemini_batches_identity_state", "identity", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The Gemini project (hash of endpoint and key, as gemini_files.identity).
    identity: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))
    gemini_name: Mapped[str | None] = mapped_column(String(100), default=None)
    input_mode: Mapped[str] = mapped_column(String(8))  # inline | file
    input_file: Mapped[str | None] = mapped_column(String(100), default=None)
    output_file: Mapped[str | None] = mapped_column(String(100), default=None)
    job_count: Mapped[int] = mapped_column(Integer)
    request_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Gemini's last seen state (BATCH_STATE_*) and batchStats (counts as ints).
    gemini_state: Mapped[str | None] = mapped_column(String(32), default=None)
    stats: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    gemini_update_time: Mapped[datetime | None] = mapped_column(default=None)
    # Last time the stats or updateTime changed (or the row was made): the watchdog's clock.
    progress_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The submitter's hold while it creates the batch; past it the reconciler takes over.
    claim: Mapped[str | None] = mapped_column(String(32), default=None)
    claim_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Generation: jobs re-sent from a stalled/expired batch go out in one with resends + 1.
    resends: Mapped[int] = mapped_column(default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)


class TierTurnaround(Base):
    """Measured turnaround (finished - created) of succeeded jobs per model and served tier,
    refreshed by the batch lane; ``auto`` reads it to pick a tier (models/tiers.py)."""

    __tablename__ = "tier_turnarounds"

    model: Mapped[str] = mapped_column(String(100), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16), primary_key=True)
    samples: Mapped[int] = mapped_column(Integer)
    p50_s: Mapped[float] = mapped_column(Float)
    p90_s: Mapped[float] = mapped_column(Float)
    measured_at: Mapped[datetime] = mapped_column(default=utcnow)


BATCHES = cast(Table, Batch.__table__)
BATCH_ITEMS = cast(Table, BatchItem.__table__)
GEMINI_BATCHES = cast(Table, GeminiBatch.__table__)
TIER_TURNAROUNDS = cast(Table, TierTurnaround.__table__)
