"""Request and response bodies of the batch routes (/v1/batches...).

A batch is a named set of items; each item is one job (its latest: a re-run points the item
at a new job). Defaults given at create apply to every item; an item's own fields replace
them (``options`` is shallow-merged over the defaults' options).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from visionq.api.json_priority import check_json_priority
from visionq.api.priority import priority_field, public_priority_field
from visionq.api.schemas import ErrorDetail, NextCursor, typed_options
from visionq.models.table_base import URL_MAX_CHARS
from visionq.models.tables import JobStatus
from visionq.vision.estimate import CostRange
from visionq.vision.tasks import TaskKind

BatchState = Literal["open", "closed", "cancelled"]
# An item's status: its latest job's, or "expired" once retention deleted that job.
ItemStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]
SHA256_PATTERN = r"^[0-9a-f]{64}$"
ERROR_CODE_PATTERN = r"^[a-z0-9_]{1,64}$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def text_problem(value: str) -> str | None:
    """Why a database cannot store or compare ``value`` (a name, a key), None if it can:
    control characters (PostgreSQL refuses NUL; keys name files in listings and CSV) or a
    lone surrogate (not valid Unicode)."""
    if _CONTROL.search(value):
        return "must not contain control characters (NUL, newline, tab...)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode"
    return None


def _printable(value: str, what: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"{what} {problem}")
    return value


class BatchCreate(BaseModel):
    """A new batch: its name (unique per tenant) and the defaults of its items."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(
        min_length=1,
        max_length=200,
        description="Unique per tenant (every API key of the tenant sees its batches). "
        "Creating a batch with a name that exists answers that batch (200, "
        "Idempotent-Replayed: true) when the defaults are equal, else 409 batch_name_taken.",
    )
    task: str = Field(
        description="caption, ask, classify, detect, segment, compare or custom: the "
        "default of every item.",
        json_schema_extra={"enum": [kind.value for kind in TaskKind]},
    )
    prompt: str | None = Field(default=None, description="Default prompt of the items.")
    model: str | None = Field(default=None, description="Default model of the items.")
    labels: list[str] | None = Field(default=None, description="classify: default labels.")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Default options of the items (as a job's options); an item's options "
        "are merged over them key by key.",
        json_schema_extra=typed_options,
    )
    schema_: dict[str, Any] | None = Field(
        default=None, alias="schema", description="custom: the default JSON Schema."
    )
    expected_items: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=10_000_000,
        description="How many items the client means to add (e.g. the files it found): the "
        "whole-batch estimate is extrapolated to it while fewer are added.",
    )
    webhook_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=URL_MAX_CHARS,
        description="Where the batch's batch.completed event is POSTed when it is closed or "
        "cancelled and every item's job has ended (again after a re-run or new items end), "
        "signed with the secret of your callbacks endpoint (GET /v1/webhooks/callbacks). "
        "Its items' job events go to your endpoints (POST /v1/webhooks). Checked by the SSRF "
        "rules of image URLs (422 url_*).",
    )
    priority: int | None = priority_field(
        "The priority of the batch's jobs among your own waiting jobs: 0 to 9, 9 first "
        "(default 5, VISIONQ_DEFAULT_PRIORITY; fair share decides across tenants)."
    )

    @field_validator("name")
    @classmethod
    def _name_printable(cls, value: str) -> str:
        return _printable(value, "name")

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: object) -> object:
        return check_json_priority(value)


class BatchImageRef(BaseModel):
    """One image of an item: give exactly one of part, data, url or sha256."""

    model_config = ConfigDict(extra="forbid")

    part: int | None = Field(
        default=None,
        ge=0,
        description="Multipart only: the index (0-based) among the request's `image` parts.",
    )
    data: str | None = Field(default=None, description="JSON only: the image bytes, base64.")
    url: str | None = Field(
        default=None, max_length=URL_MAX_CHARS, description="An http(s) URL the API downloads."
    )
    sha256: str | None = Field(
        default=None,
        pattern=SHA256_PATTERN,
        description="An image already stored by a job of this tenant (its inputs' sha256, "
        "or an `images` entry of an earlier add): nothing is uploaded again.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> BatchImageRef:
        given = [v for v in (self.part, self.data, self.url, self.sha256) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of part, data, url or sha256")
        return self


class BatchItemIn(BaseModel):
    """One item: its key (unique in the batch) and images; other fields override the
    batch's defaults."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    key: str = Field(
        min_length=1,
        max_length=1024,
        description="Unique in the batch (e.g. the file's path): adding a key again answers "
        "its existing job (outcome exists), so an interrupted upload can be resumed.",
    )
    images: list[BatchImageRef] = Field(min_length=1)
    prompt: str | None = None
    model: str | None = None
    labels: list[str] | None = None
    options: dict[str, Any] | None = Field(
        default=None,
        description="Merged over the batch's options key by key.",
        json_schema_extra=typed_options,
    )
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class ItemsAdd(BaseModel):
    """POST /v1/batches/{id}/items as JSON (multipart: the same document in the `items`
    field, images as `image` file parts)."""

    model_config = ConfigDict(extra="forbid")

    items: list[BatchItemIn] = Field(min_length=1)


class ItemOutcome(BaseModel):
    key: str
    outcome: Literal["created", "exists", "rejected"]
    job_id: str | None = None
    status: JobStatus | None = None
    error: ErrorDetail | None = Field(
        default=None, description="rejected: why (the code and message a single submit gives)."
    )
    images: list[str] = Field(
        default_factory=list,
        description="created: the stored sha256 of each image (usable as sha256 refs).",
    )


class ItemsAdded(BaseModel):
    items: list[ItemOutcome]
    created: int
    existing: int
    rejected: int


class StatusCounts(BaseModel):
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    expired: int = Field(default=0, description="Items whose job retention deleted.")


class TokenTotals(BaseModel):
    prompt: int = 0
    candidates: int = 0
    thoughts: int = 0
    total: int = 0


class GeminiBatchWait(BaseModel):
    id: str = Field(description="visionq's id of the Gemini batch.")
    state: str = Field(
        description="creating, pending or running (at Gemini); succeeded, failed, cancelled "
        "or expired (ended at Gemini, its results being stored); lost or stalled (its items "
        "being re-sent)."
    )
    gemini_state: str | None = Field(description="Gemini's last seen state (BATCH_STATE_*).")
    items: int = Field(description="This batch's unfinished items in it.")
    requests: int = Field(description="All its requests (other batches' jobs included).")
    answered: int | None = Field(
        description="Requests Gemini answered so far (batchStats), null until it says."
    )
    progress_at: datetime = Field(description="When its progress last changed.")


class BatchLaneProgress(BaseModel):
    gathering: int = Field(
        description="Unfinished items of tier batch not in a Gemini batch yet (gathered "
        "within VISIONQ_BATCH_GATHER_S)."
    )
    in_batches: int = Field(description="Unfinished items inside Gemini batches.")
    batches: list[GeminiBatchWait] = Field(
        description="The Gemini batches they wait in, oldest first (at most 20)."
    )


class BatchProgress(BaseModel):
    counts: StatusCounts
    items: int = Field(description="Items added so far.")
    expected_items: int | None
    done: int = Field(description="Items whose latest job ended (or expired).")
    tokens: TokenTotals = Field(
        description="Tokens of the items' latest jobs; total also counts the jobs re-runs replaced."
    )
    cost_usd: str = Field(description="What the batch's jobs cost so far, re-runs included.")
    estimate_usd: CostRange = Field(
        description="The whole batch's estimated cost: the added items' estimates, "
        "extrapolated to expected_items while fewer are added."
    )
    rate_per_s: float | None = Field(description="Items run per second (basis's); no cache hit.")
    eta_s: float | None = Field(description="Seconds until every item ends, eta_not_added too.")
    eta_at: datetime | None
    eta_basis: Literal["measured", "quota", "none"] = Field(
        description="measured: the rate of the last VISIONQ_BATCH_ETA_WINDOW_S seconds "
        "(capped by the quota); quota: the rate limits alone (too few ended yet); none: "
        "nothing to go by, or nothing left."
    )
    eta_not_added: int = Field(0, description="Expected items not added yet, in the ETA as queued.")
    gemini: BatchLaneProgress | None = Field(
        default=None,
        description="Items in the Gemini Batch lane (tier batch, or auto's choice): how many "
        "wait to be gathered and in which Gemini batches, with their state and progress; "
        "null when no unfinished item is in that lane.",
    )


class BatchPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    name: str
    state: BatchState = Field(description="open, closed (no more items) or cancelled.")
    task: str
    model: str | None
    prompt: str | None
    labels: list[str] | None
    options: dict[str, Any]
    schema_: dict[str, Any] | None = Field(alias="schema")
    expected_items: int | None
    created_at: datetime
    closed_at: datetime | None
    cancelled_at: datetime | None
    item_count: int
    images_received: int = Field(description="Images uploaded (bytes or URL).")
    images_referenced: int = Field(description="Images given by sha256 (not uploaded).")
    progress: BatchProgress | None = Field(
        default=None, description="GET /v1/batches/{id} only (null in lists)."
    )
    webhook_url: str | None = Field(
        default=None, description="Where batch.completed is also sent (create's webhook_url)."
    )
    priority: int = public_priority_field()


class BatchPage(BaseModel):
    batches: list[BatchPublic]
    next_cursor: NextCursor


class ItemPublic(BaseModel):
    key: str
    job_id: str | None
    status: ItemStatus
    error_code: str | None
    reruns: int


class ItemPage(BaseModel):
    items: list[ItemPublic]
    next_cursor: NextCursor


class BatchLookup(BaseModel):
    """Which of these keys the batch has, and which of these images this tenant stored."""

    model_config = ConfigDict(extra="forbid")

    keys: list[str] = Field(default_factory=list)
    sha256s: list[str] = Field(default_factory=list)


class BatchLookupResult(BaseModel):
    existing: dict[str, str | None] = Field(
        description="Each key the batch has, with its job id (null once expired)."
    )
    stored_sha256s: list[str]


RerunStatus = Literal["failed", "cancelled"]


def _failed_only() -> list[RerunStatus]:
    return ["failed"]


class RerunRequest(BaseModel):
    """Which ended items get a new job, and what changes for it."""

    model_config = ConfigDict(extra="forbid")

    statuses: list[RerunStatus] = Field(default_factory=_failed_only, min_length=1)
    error_codes: list[Annotated[str, Field(pattern=ERROR_CODE_PATTERN)]] | None = Field(
        default=None,
        max_length=100,
        description="Only items whose job failed with one of these codes (a job's error.code, "
        "e.g. rate_limited).",
    )
    model: str | None = Field(default=None, description="Run the new jobs on this model.")
    options: dict[str, Any] | None = Field(
        default=None,
        description="Merged over each old job's options key by key.",
        json_schema_extra=typed_options,
    )


class RerunResult(BaseModel):
    rerun: int = Field(description="Items given a new job.")
    batch: BatchPublic
