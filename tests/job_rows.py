"""A queued job row for models/batchjobs.insert_jobs, for the tests that insert jobs directly."""

from __future__ import annotations

import uuid
from typing import Any

from visionq.models.batchjobs import NewJobRow
from visionq.models.jobs import NewInput
from visionq.vision.tasks import JobOptions

INPUT = NewInput("a" * 64, "image/png", 10, 20, 30)


def job_row(tenant: str, **changes: Any) -> NewJobRow:
    """A caption job of ``tenant`` with one PNG input, nothing cached; ``changes`` override."""
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "tenant": tenant,
        "task": "caption",
        "model": "gemini-2.5-flash",
        "prompt": None,
        "labels": None,
        "options": JobOptions(),
        "response_schema": None,
        "estimate": None,
        "reserved_nusd": 0,
        "cache_key": None,
        "cached": None,
        "warnings": None,
        "retry_of": None,
        "inputs": [INPUT],
    }
    return NewJobRow(**(values | changes))
