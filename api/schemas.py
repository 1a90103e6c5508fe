"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from visionq.api.json_priority import check_json_priority
from visionq.api.priority import priority_field, public_priority_field
from visionq.api.results import result_schema
from visionq.models.batchjobs import BatchRef
from visionq.models.table_base import URL_MAX_CHARS
from visionq.models.tables import Job, JobStatus
from visionq.vision.changes import changes_description
from visionq.vision.costing import usd_text
from visionq.vision.estimate import Estimate
from visionq.vision.tasks import MAX_DEADLINE_S, TaskKind
from visionq.vision.tiers import Tier

# The cursor of every paged list (jobs, batches, batch items, webhook deliveries and attempts).
NextCursor = Annotated[
    str | None, Field(description="Pass as ?cursor= for the next page; null at the end.")
]


class ImageIn(BaseModel):
    """An image in a JSON request: its bytes (base64) or a URL the API downloads.

    The format is read from the bytes, not from ``mime_type``.
    """

    model_config = ConfigDict(extra="forbid")

    data: str | None = Field(
        default=None, description="The image bytes, base64 (standard or URL-safe alphabet)."
    )
    url: str | None = Field(
        default=None,
        max_length=URL_MAX_CHARS,
        description="An http(s) URL of a public host; fetched by the API (size and time "
        "capped, redirects checked). Give either data or url.",
    )
    mime_type: str | None = Field(
        default=None, description="Informative only: the type is detected from the bytes."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ImageIn:
        if (self.data is None) == (self.url is None):
            raise ValueError("give exactly one of data (base64 bytes) or url")
        return self


def typed_options(schema: dict[str, Any]) -> None:
    """The document's schema of a job's ``options``: free-form (JobOptions checks every key
    and its 422 names what is allowed), with the tier and deadline typed: their enum and
    bounds. For ``json_schema_extra``."""
    schema["properties"] = {
        "tier": {
            "type": "string",
            "enum": [tier.value for tier in Tier],
            "description": "Service tier: standard, flex (half price, minutes), priority "
            "(costs more), batch (half price, hours) or auto (the cheapest that meets the "
            "deadline); unset = the server's VISIONQ_TIER_DEFAULT.",
        },
        "deadline_s": {
            "type": "integer",
            "minimum": 60,
            "maximum": MAX_DEADLINE_S,
            "description": "Seconds from submission by which the job should end (a whole "
            "number, 60 to 604800); unset = the tier's default. Tier flex and batch need "
            "more than their lane's reserve (422 deadline_too_short names the minimum).",
        },
    }


class JobCreate(BaseModel):
    """A job as JSON. Multipart requests carry the same fields as form fields."""

    model_config = ConfigDict(extra="forbid")

    # Checked by the admission (its message lists the tasks); the document shows the enum.
    task: str = Field(
        description="caption, ask, classify, detect, segment, compare or custom.",
        json_schema_extra={"enum": [kind.value for kind in TaskKind]},
    )
    images: list[ImageIn] = Field(min_length=1)
    prompt: str | None = Field(
        default=None,
        description="ask: the question (required). detect: what to find. caption/classify: "
        "extra context.",
    )
    model: str | None = Field(
        default=None,
        description="Gemini model id or alias (GET /v1/models); the server's default for the "
        "task if unset. Retired ids are 422s, and so are unknown ids unless the operator "
        "allows them (VISIONQ_ALLOW_UNKNOWN_MODELS).",
    )
    labels: list[str] | None = Field(default=None, description="classify: the candidate labels.")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="temperature, max_output_tokens (thinking shares it), thinking_level "
        "(MINIMAL/LOW/MEDIUM/HIGH) or thinking_budget, max_objects (detect/segment), max_side "
        "(downscale before sending), media_resolution (LOW/MEDIUM/HIGH, any case, Gemini's "
        "MEDIA_RESOLUTION_ spelling too), image_media_resolution (one per image), cache, "
        "economy, tier (standard, flex, priority, batch or auto) and deadline_s (seconds, "
        "60 to 604800). What each model takes: GET /v1/models.",
        json_schema_extra=typed_options,
    )
    schema_: dict[str, Any] | None = Field(
        default=None,
        alias="schema",
        description="custom: a JSON Schema the answer must satisfy (structured output).",
    )
    webhook_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=URL_MAX_CHARS,
        description="Where this job's end event (job.succeeded, job.failed or job.cancelled) is "
        "also POSTed, signed with the secret of your callbacks endpoint (GET "
        "/v1/webhooks/callbacks). Checked by the SSRF rules of image URLs (422 url_*).",
    )
    priority: int | None = priority_field()

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: object) -> object:
        return check_json_priority(value)


def _usd(nusd: int | None) -> str | None:
    """Nano-USD as a plain decimal string (exact, no float rounding)."""
    return None if nusd is None else usd_text(nusd)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class InputPublic(BaseModel):
    # Read from its JobInput row: model_validate(row). (No docstring: it would enter the
    # OpenAPI document.)
    model_config = ConfigDict(from_attributes=True)

    position: int
    sha256: str
    mime_type: str
    width: int
    height: int
    byte_size: int
    transport: str | None
    changes: list[str] = Field(
        default_factory=list,
        description=changes_description(),
    )

    @field_validator("changes", mode="before")
    @classmethod
    def _null_is_no_changes(cls, value: object) -> object:
        return [] if value is None else value


class AttemptPublic(BaseModel):
    # Read from its Attempt row: model_validate(row).
    model_config = ConfigDict(from_attributes=True)

    number: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    error_class: str | None
    error_message: str | None
    http_status: int | None
    retry_delay_s: float | None = Field(
        description="When the attempt failed and another followed: the wait before it."
    )
    cost_usd: str | None = Field(
        validation_alias=AliasChoices("cost_nusd", "cost_usd"),
        description="What this attempt's Gemini call cost, USD (at the tier that served it).",
    )
    requested_tier: str | None = Field(
        default=None,
        description="The service tier asked of Gemini: standard, flex, priority or batch.",
    )
    served_tier: str | None = Field(
        default=None,
        description="The tier Gemini served the call at (x-gemini-service-tier; a priority "
        "call over its limit is served at standard); null when nothing was served (a flex "
        "call shed, a timeout).",
    )
    gemini_batch: str | None = Field(
        default=None,
        validation_alias=AliasChoices("gemini_batch_id", "gemini_batch"),
        description="The Gemini batch (visionq's id) the attempt ran in, if any.",
    )

    @field_validator("cost_usd", mode="before")
    @classmethod
    def _usd_text(cls, value: object) -> object:
        # The row's nano-USD integer; a string is already the text.
        return _usd(value) if isinstance(value, int) else value


class UsagePublic(BaseModel):
    prompt_tokens: int | None
    candidates_tokens: int | None
    thoughts_tokens: int | None
    cached_tokens: int | None
    total_tokens: int | None
    details: dict[str, Any] = Field(description="usage_metadata as Gemini reported it.")


class JobPublic(BaseModel):
    id: str
    status: JobStatus = Field(description="queued, running, succeeded, failed or cancelled.")
    task: TaskKind
    model: str
    prompt: str | None
    labels: list[str] | None
    options: dict[str, Any]
    response_schema: dict[str, Any] | None = Field(description="custom: the answer's schema.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempt_count: int
    model_version: str | None
    warnings: list[ErrorDetail] = Field(
        default_factory=list,
        description="What to know about a job that runs anyway: a deprecated model "
        "(model_deprecated), an alias pinned to a model (model_alias), a model the "
        "catalogue does not know (model_unknown, when the operator allows them), an option "
        "the model ignores (option_ignored), Google answering with another model "
        "(model_routed).",
    )
    inputs: list[InputPublic]
    attempts: list[AttemptPublic]
    usage: UsagePublic | None
    # Served as stored (not validated again on every read); the document types it.
    result: Annotated[dict[str, Any] | None, WithJsonSchema(result_schema())]
    error: ErrorDetail | None
    estimate: dict[str, Any] | None = Field(
        description="Tokens and USD range estimated at submit (see POST /v1/estimate)."
    )
    cost_usd: str | None = Field(
        description="Actual cost of all of the job's Gemini calls, at the tiers that served them."
    )
    tier: str = Field(
        default="standard",
        description="The service tier asked for (options.tier, else the server's default): "
        "standard, flex, priority, batch or auto.",
    )
    lane: str = Field(
        default="standard",
        description="The tier the job was sent to (auto resolved at submit: see the "
        "estimate's assumptions for why): standard, flex, priority or batch.",
    )
    served_tier: str | None = Field(
        default=None,
        description="The tier that served the stored answer (a flex job that fell back, or "
        "a priority call downgraded, shows standard); null until then and for a cache hit.",
    )
    deadline_at: datetime | None = Field(
        default=None,
        description="By when the job should end: submit time + options.deadline_s (or the "
        "tier's default). Drives auto's choice and the flex fallback.",
    )
    cached_from: str | None = Field(
        description="Answered from the cache: the earlier identical job (zero cost)."
    )
    retry_of: str | None = Field(
        description="Made by POST /v1/jobs/{id}/retry: the job it retries."
    )
    batch_id: str | None = Field(
        default=None,
        description="The batch whose item this job is the latest job of (null for a single "
        "job; a job a re-run replaced shows null: its replacement's retry_of names it).",
    )
    batch_key: str | None = Field(default=None, description="That item's key in the batch.")
    webhook_url: str | None = Field(
        default=None, description="Where the job's end event is also sent (submit's webhook_url)."
    )
    priority: int = public_priority_field()

    @classmethod
    def of(cls, job: Job, batch: BatchRef | None = None) -> JobPublic:
        """The job as answered; ``batch``: the batch item it is the latest job of."""
        usage = None
        if job.usage is not None:
            usage = UsagePublic(
                prompt_tokens=job.prompt_tokens,
                candidates_tokens=job.candidates_tokens,
                thoughts_tokens=job.thoughts_tokens,
                cached_tokens=job.cached_tokens,
                total_tokens=job.total_tokens,
                details=job.usage,
            )
        error = None
        if job.error_code:
            error = ErrorDetail(code=job.error_code, message=job.error_message or "")
        return cls(
            id=job.id,
            status=JobStatus(job.status),
            task=TaskKind(job.task),
            model=job.model,
            prompt=job.prompt,
            labels=job.labels,
            options=job.options.stored(),
            response_schema=job.response_schema,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            attempt_count=job.attempt_count,
            model_version=job.model_version,
            warnings=[
                ErrorDetail(code=w["code"], message=w["message"]) for w in job.warnings or []
            ],
            inputs=[InputPublic.model_validate(row) for row in job.inputs],
            attempts=[AttemptPublic.model_validate(row) for row in job.attempts],
            usage=usage,
            result=job.result,
            error=error,
            estimate=job.estimate.stored() if job.estimate else None,
            cost_usd=_usd(job.cost_nusd),
            tier=job.tier or "standard",
            lane=job.lane or "standard",
            served_tier=job.served_tier,
            deadline_at=job.deadline_at,
            cached_from=job.cached_from,
            retry_of=job.retry_of,
            batch_id=batch.batch_id if batch is not None else None,
            batch_key=batch.key if batch is not None else None,
            webhook_url=job.callback_url,
            priority=job.priority,
        )


class JobPage(BaseModel):
    jobs: list[JobPublic]
    next_cursor: NextCursor
    missing: list[str] = Field(
        default_factory=list,
        description="With ?ids=: the ids asked for that name no job of this tenant (unknown, "
        "another tenant's, or not a job id), in the order given.",
    )


class EstimatePublic(Estimate):
    """POST /v1/estimate's answer: the estimate and the warnings the job would carry."""

    warnings: list[ErrorDetail] = Field(
        default_factory=list,
        description="As a job's: a deprecated model, an alias resolved, an option ignored.",
    )


class HealthStatus(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="Informational, never a reason for 503. batch_lane: the Gemini Batch "
        "lane's batches not closed (live, of them creating; ended at Gemini, results being "
        "stored; stalled; lost), how many live ones made no progress for "
        "VISIONQ_BATCH_STALL_S (past_stall) and the oldest live one's seconds since its "
        "last progress.",
    )
