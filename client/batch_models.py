"""The batch routes' JSON bodies as the client sees them (api/batch_schemas.py's answers;
unknown fields are kept, not refused, so an older client reads a newer server)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

from visionq.client.models import JobError, _Body

# An item's statuses that will not change any more (expired: retention deleted its job).
ENDED_STATUSES = frozenset({"succeeded", "failed", "cancelled", "expired"})


@dataclass(frozen=True)
class Sha256Ref:
    """An image already stored by a job of the tenant, named by its sha256: the API
    takes it without the bytes being sent again."""

    sha256: str


# An item's image: a path or the bytes (uploaded), an http(s) URL (str: the API fetches it),
# or a Sha256Ref.
ItemImage = Path | bytes | str | Sha256Ref


@dataclass(frozen=True)
class NewItem:
    """One item to add: its key (unique in the batch), images, and the fields that replace
    the batch's defaults for it (prompt, model, labels, schema; options merge key by key)."""

    key: str
    images: list[ItemImage]
    overrides: dict[str, Any] = field(default_factory=dict)


class CostRange(_Body):
    min: Decimal
    max: Decimal


class StatusCounts(_Body):
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    expired: int = 0


class TokenTotals(_Body):
    prompt: int = 0
    candidates: int = 0
    thoughts: int = 0
    total: int = 0


class GeminiBatchWait(_Body):
    """A Gemini batch some of the batch's unfinished items wait in (the batch lane)."""

    id: str
    state: str
    gemini_state: str | None = None
    items: int
    requests: int
    answered: int | None = None
    progress_at: datetime


class BatchLaneProgress(_Body):
    """The batch's unfinished items in the Gemini Batch lane: not gathered yet, and in
    which Gemini batches."""

    gathering: int = 0
    in_batches: int = 0
    batches: list[GeminiBatchWait] = Field(default_factory=list)


class BatchProgress(_Body):
    counts: StatusCounts
    items: int
    expected_items: int | None = None
    done: int
    tokens: TokenTotals
    cost_usd: Decimal
    estimate_usd: CostRange
    rate_per_s: float | None = None
    eta_s: float | None = None
    eta_at: datetime | None = None
    eta_basis: str = "none"
    # Older servers send none: read as no item in the batch lane.
    gemini: BatchLaneProgress | None = None

    @property
    def unfinished(self) -> int:
        """Items whose latest job has not ended (queued or running)."""
        return self.counts.queued + self.counts.running


class Batch(_Body):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str
    name: str
    state: str
    task: str
    model: str | None = None
    prompt: str | None = None
    labels: list[str] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    expected_items: int | None = None
    created_at: datetime
    closed_at: datetime | None = None
    cancelled_at: datetime | None = None
    item_count: int = 0
    images_received: int = 0
    images_referenced: int = 0
    # GET /v1/batches/{id} only (None in lists).
    progress: BatchProgress | None = None
    webhook_url: str | None = None
    # 0..9, 9 first among the tenant's waiting jobs (the batch's jobs wait at it).
    priority: int = 5


class BatchPage(_Body):
    batches: list[Batch]
    next_cursor: str | None = None


class ItemOutcome(_Body):
    key: str
    outcome: str  # created, exists or rejected
    job_id: str | None = None
    status: str | None = None
    error: JobError | None = None
    # created: the stored sha256 of each image (usable as Sha256Ref later).
    images: list[str] = Field(default_factory=list)


class ItemsAdded(_Body):
    items: list[ItemOutcome]
    created: int
    existing: int
    rejected: int


class BatchItem(_Body):
    key: str
    job_id: str | None = None
    status: str
    error_code: str | None = None
    reruns: int = 0


class ItemPage(_Body):
    items: list[BatchItem]
    next_cursor: str | None = None


class Lookup(_Body):
    # Each key the batch has, with its job id (None once retention deleted the job).
    existing: dict[str, str | None]
    stored_sha256s: list[str]


class RerunResult(_Body):
    rerun: int
    batch: Batch
