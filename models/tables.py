"""The ORM tables. The schema itself is created only by the Alembic migrations."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from visionq.models.batch_tables import (
    BATCH_ITEMS,
    BATCHES,
    GEMINI_BATCHES,
    TIER_TURNAROUNDS,
    Batch,
    BatchItem,
    BatchState,
    GeminiBatch,
    TierTurnaround,
)
from visionq.models.table_base import (
    URL_MAX_CHARS,
    Base,
    ModelJSON,
    StorableModel,
    UTCDateTime,
    utcnow,
)
from visionq.models.webhook_tables import (
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS,
    WEBHOOK_EVENTS,
    WEBHOOK_SECRETS,
    EndpointKind,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSecret,
)
from visionq.vision.estimate import StoredEstimate
from visionq.vision.tasks import JobOptions

# Defined in models/table_base.py, models/batch_tables.py and models/webhook_tables.py and
# re-exported, so code imports every table from here (the tables below are public as well).
__all__ = [
    "BATCHES",
    "BATCH_ITEMS",
    "GEMINI_BATCHES",
    "TIER_TURNAROUNDS",
    "WEBHOOK_ATTEMPTS",
    "WEBHOOK_DELIVERIES",
    "WEBHOOK_ENDPOINTS",
    "WEBHOOK_EVENTS",
    "WEBHOOK_SECRETS",
    "Base",
    "Batch",
    "BatchItem",
    "BatchState",
    "EndpointKind",
    "GeminiBatch",
    "ModelJSON",
    "StorableModel",
    "TierTurnaround",
    "UTCDateTime",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookSecret",
    "utcnow",
]


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# The states a job never leaves (a finished job).
TERMINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class AttemptOutcome(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # The call finished but the job had been cancelled meanwhile: its answer is dropped.
    DISCARDED = "discarded"
    # The worker running it died (its lease expired); the job was delivered again.
    LOST = "lost"


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Shown in listings so a key can be recognised without revealing it.
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_tenant_created", "tenant", "created_at", "id"),
        Index("ix_jobs_tenant_status", "tenant", "status"),
        # The batch lane's gatherer: queued lane-batch jobs per model, oldest first.
        Index("ix_jobs_lane_status_model", "lane", "status", "model", "created_at"),
        Index("ix_jobs_gemini_batch_id", "gemini_batch_id"),
        Index("ix_jobs_status_finished", "status", "finished_at"),  # turnarounds
        # A retry's check for a newer job that replaced this one (models/batch_reruns.py
        # replacing_item): the jobs made from it, found without scanning the tenant's jobs.
        Index("ix_jobs_tenant_retry_of", "tenant", "retry_of"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    task: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(100))
    prompt: Mapped[str | None] = mapped_column(Text, default=None)
    labels: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    # custom task: the JSON Schema the answer must satisfy.
    response_schema: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    options: Mapped[JobOptions] = mapped_column(ModelJSON(JobOptions), default=JobOptions)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    attempt_count: Mapped[int] = mapped_column(default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    model_version: Mapped[str | None] = mapped_column(String(100), default=None)
    # What a user should know about the job though it ran: a deprecated model at submit,
    # Google answering with another model than the one asked for. [{"code", "message"}].
    warnings: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, default=None)
    prompt_tokens: Mapped[int | None] = mapped_column(default=None)
    candidates_tokens: Mapped[int | None] = mapped_column(default=None)
    thoughts_tokens: Mapped[int | None] = mapped_column(default=None)
    cached_tokens: Mapped[int | None] = mapped_column(default=None)
    total_tokens: Mapped[int | None] = mapped_column(default=None)
    usage: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # The estimate made at submit (vision.estimate), shown beside the actual usage and cost.
    estimate: Mapped[StoredEstimate | None] = mapped_column(ModelJSON(StoredEstimate), default=None)
    # Money is stored as integer nano-USD (1e-9 $): exact, and atomic to add up in SQL on
    # every backend (SQLite has no decimal type).
    cost_nusd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Budget held for this job until it ends (then settled to its cost, or released).
    reserved_nusd: Mapped[int] = mapped_column(BigInteger, default=0)
    # Same images, task, prompt, schema, model and options: a finished job's result is reused.
    cache_key: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    cached_from: Mapped[str | None] = mapped_column(String(36), default=None)
    # Made by POST /v1/jobs/{id}/retry: the finished job whose inputs it runs again.
    retry_of: Mapped[str | None] = mapped_column(String(36), default=None)
    # Delivery (see models/leases.py): when a message was last sent for the job (NULL = the
    # send failed: the sweeper sends it), how often a worker took it, and the running
    # worker's lease. Only the holder of lease_token may end the job or open attempts.
    enqueued_at: Mapped[datetime | None] = mapped_column(default=None)
    deliveries: Mapped[int] = mapped_column(default=0)
    lease_token: Mapped[str | None] = mapped_column(String(32), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    # Service tiers (issue 20): the tier asked for (options.tier, maybe "auto"), the lane it
    # resolved to at admission (standard/flex/priority/batch), and the deadline it must meet.
    tier: Mapped[str] = mapped_column(String(16), default="standard", server_default="standard")
    lane: Mapped[str] = mapped_column(String(16), default="standard", server_default="standard")
    deadline_at: Mapped[datetime | None] = mapped_column(default=None)
    # The tier of the call whose answer was stored, and the same usage priced at standard
    # (savings are read, never recomputed with later prices).
    served_tier: Mapped[str | None] = mapped_column(String(16), default=None)
    standard_cost_nusd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The Gemini batch holding the job now (lease_token is then that batch's token). No
    # foreign key: adding one would rebuild `jobs` on SQLite.
    gemini_batch_id: Mapped[str | None] = mapped_column(String(36), default=None)
    # Issue 21: where this job's end event is also sent (signed with the tenant's callbacks
    # endpoint secret), besides the tenant's endpoints.
    callback_url: Mapped[str | None] = mapped_column(String(URL_MAX_CHARS), default=None)
    # Issue 23: the order within its tenant's waiting jobs (0..9, 9 first; models/fairqueue.py).
    priority: Mapped[int] = mapped_column(SmallInteger, default=5, server_default="5")

    inputs: Mapped[list[JobInput]] = relationship(
        back_populates="job", order_by="JobInput.position", cascade="all, delete-orphan"
    )
    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="job", order_by="Attempt.number", cascade="all, delete-orphan"
    )


class JobInput(Base):
    __tablename__ = "job_inputs"
    __table_args__ = (UniqueConstraint("job_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    mime_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int]
    height: Mapped[int]
    byte_size: Mapped[int]
    # "inline" or "file": how the bytes reached Gemini (decided by the worker).
    transport: Mapped[str | None] = mapped_column(String(16), default=None)
    # What submit did to the uploaded image before storing it (codes of vision.changes:
    # "gif_to_png", "exif_transposed", ...; older rows may hold sentences such as "converted
    # GIF to PNG (first frame of 12)"); None or [] for none.
    changes: Mapped[list[str] | None] = mapped_column(JSON, default=None)

    job: Mapped[Job] = relationship(back_populates="inputs")


class FileState(enum.StrEnum):
    """Our view of a Gemini File API upload (Gemini's own states plus two of ours)."""

    UPLOADING = "UPLOADING"  # a worker holds the right to upload it now
    PROCESSING = "PROCESSING"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"
    GONE = "GONE"  # expired, deleted, or refused by Gemini at call time


class GeminiFile(Base):
    """An image uploaded to the Gemini File API, reusable by sha256 until it expires."""

    __tablename__ = "gemini_files"
    __table_args__ = (UniqueConstraint("identity", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Files belong to a Gemini project; we only know the key (and endpoint), so a hash of
    # both stands for it. Never the key itself.
    identity: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    mime_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int]
    state: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(100), default=None)
    uri: Mapped[str | None] = mapped_column(Text, default=None, index=True)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    uploads: Mapped[int] = mapped_column(default=0)
    # Who may record the upload now: set when a worker claims it, checked when it writes
    # back, so a worker whose claim was taken over (it seemed dead) cannot overwrite.
    claim: Mapped[str | None] = mapped_column(String(32), default=None)


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("job_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[str] = mapped_column(String(16), default=AttemptOutcome.RUNNING)
    error_class: Mapped[str | None] = mapped_column(String(100), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    http_status: Mapped[int | None] = mapped_column(default=None)
    retry_delay_s: Mapped[float | None] = mapped_column(default=None)
    usage: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    cost_nusd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The tier asked for and the one Gemini says it served (a flex call shed, a priority
    # call downgraded); the Gemini batch the attempt ran in, if any.
    requested_tier: Mapped[str | None] = mapped_column(String(16), default=None)
    served_tier: Mapped[str | None] = mapped_column(String(16), default=None)
    gemini_batch_id: Mapped[str | None] = mapped_column(String(36), default=None)

    job: Mapped[Job] = relationship(back_populates="attempts")


class IdempotencyKey(Base):
    """A client's Idempotency-Key on POST /v1/jobs and the job it created, per tenant."""

    __tablename__ = "idempotency_keys"

    tenant: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # sha256 of the request's fields and image bytes: the same key with another body is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Budget(Base):
    """A tenant's USD caps and running counters, changed only by conditional updates.

    Admission adds the job's estimated maximum to ``reserved_nusd`` in one UPDATE whose WHERE
    clause checks the caps, so concurrent submissions can never overshoot. Amounts in nano-USD.
    """

    __tablename__ = "budgets"

    tenant: Mapped[str] = mapped_column(String(100), primary_key=True)
    daily_nusd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    monthly_nusd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    reserved_nusd: Mapped[int] = mapped_column(BigInteger, default=0)
    day: Mapped[str] = mapped_column(String(10), default="")
    spent_day_nusd: Mapped[int] = mapped_column(BigInteger, default=0)
    month: Mapped[str] = mapped_column(String(7), default="")
    spent_month_nusd: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # budget.threshold events (issue 21): the ratios of a cap that send one (NULL: 0.8 and
    # 1.0), and the highest level already sent in the current day and month.
    alert_ratios: Mapped[list[float] | None] = mapped_column(JSON, default=None)
    alert_day: Mapped[str | None] = mapped_column(String(10), default=None)
    alert_day_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    alert_month: Mapped[str | None] = mapped_column(String(7), default=None)
    alert_month_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


# Core views of the tables, for hot conditional statements where ORM-enabled UPDATE and
# INSERT would add session synchronisation and unit-of-work overhead for nothing.
JOBS = cast(Table, Job.__table__)
JOB_INPUTS = cast(Table, JobInput.__table__)
ATTEMPTS = cast(Table, Attempt.__table__)
BUDGETS = cast(Table, Budget.__table__)
API_KEYS = cast(Table, ApiKey.__table__)
