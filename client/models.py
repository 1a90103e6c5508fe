"""The API's JSON bodies as the client sees them (unknown fields are kept, not refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class _Body(BaseModel):
    # A newer server may add fields; an older client must still read the rest.
    model_config = ConfigDict(extra="allow")


class JobError(_Body):
    code: str
    message: str


class JobInput(_Body):
    position: int
    sha256: str
    mime_type: str
    width: int
    height: int
    byte_size: int


class JobAttempt(_Body):
    number: int
    started_at: datetime
    finished_at: datetime | None = None
    outcome: str
    error_class: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    retry_delay_s: float | None = None
    # The service tier asked of Gemini and the one that served the call (None when nothing
    # was served: a flex call shed); the Gemini batch (visionq's id) the attempt ran in.
    requested_tier: str | None = None
    served_tier: str | None = None
    gemini_batch: str | None = None


class JobUsage(_Body):
    prompt_tokens: int | None = None
    candidates_tokens: int | None = None
    thoughts_tokens: int | None = None
    total_tokens: int | None = None


class Job(_Body):
    id: str
    status: str
    task: str
    model: str
    prompt: str | None = None
    labels: list[str] | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempt_count: int = 0
    inputs: list[JobInput] = []
    attempts: list[JobAttempt] = []
    usage: JobUsage | None = None
    result: dict[str, Any] | None = None
    error: JobError | None = None
    model_version: str | None = None
    # A deprecated model, an alias resolved, an option ignored, an answer from another
    # model than the one asked for: same shape as an error.
    warnings: list[JobError] = []
    # Set on a job made by VisionqClient.retry: the job it runs again.
    retry_of: str | None = None
    # Answered from the result cache: the earlier identical job (no charge, no call).
    cached_from: str | None = None
    # A batch item's latest job: its batch and key (None for a single job).
    batch_id: str | None = None
    batch_key: str | None = None
    # Where the job's end event is also sent (submit's webhook_url).
    webhook_url: str | None = None
    # 0..9, 9 first among the tenant's waiting jobs (fair share; not the service tier).
    priority: int = 5
    # The service tier asked for (standard, flex, priority, batch or auto), the one the job
    # was sent to (auto resolved at submit), the one that served its stored answer, and by
    # when it should end (submit time + options.deadline_s, or the tier's default).
    tier: str = "standard"
    lane: str = "standard"
    served_tier: str | None = None
    deadline_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES


class JobPage(_Body):
    jobs: list[Job]
    next_cursor: str | None = None
    # GET /v1/jobs?ids=: the ids asked for that name no job of this tenant.
    missing: list[str] = []
