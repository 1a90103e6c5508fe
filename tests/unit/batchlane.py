"""Job specs, blobs and a fake upload cache for the batch lane's unit tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from visionq.models.blobs import BlobStore
from visionq.models.leases import InputSpec, JobSpec
from visionq.vision.tasks import JobOptions

MODEL = "gemini-3.8-flash"


def spec(
    job_id: str, *images: str, task: str = "caption", options: dict[str, Any] | None = None
) -> JobSpec:
    """A job of ``task`` on the blobs ``images`` (sha256 hex digests)."""
    inputs = tuple(
        InputSpec(position=i, sha256=sha, mime_type="image/png", width=64, height=48)
        for i, sha in enumerate(images)
    )
    return JobSpec(
        id=job_id, tenant="t", task=task, model=MODEL, prompt=None,
        labels=["cat", "dog"] if task == "classify" else None,
        options=JobOptions.model_validate(options or {}), response_schema=None,
        estimate=None, started_at=datetime.now(UTC), inputs=inputs,
    )  # fmt: skip


def blob(store: BlobStore, size: int, seed: int = 0) -> str:
    """A blob of ``size`` bytes (not a real image: nothing decodes it without max_side)."""
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    return store.put(b"\x89PNG" + data[: size - 4])


class FakeUploads:
    """UploadCache.uri_for that records what it was asked and answers a fixed URI."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, int]] = []
        self.margins: list[timedelta | None] = []

    def uri_for(
        self, sha256: str, mime_type: str, size_bytes: int, *, margin: timedelta | None = None
    ) -> str:
        self.asked.append((sha256, mime_type, size_bytes))
        self.margins.append(margin)
        return f"https://emulator/v1beta/files/{sha256[:12]}"


def store_at(tmp_path: Path) -> BlobStore:
    return BlobStore(str(tmp_path / "blobs"))
