"""A stand-in for VisionqClient, so the user commands run in-process without an API."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from visionq.client import Job, VisionqError


def png_file(path: Path, size: tuple[int, int] = (64, 48), colour: str = "red") -> Path:
    """A small real PNG at ``path``."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    path.write_bytes(out.getvalue())
    return path


def make_job(
    task: str = "caption", status: str = "succeeded", result: dict[str, Any] | None = None
) -> Job:
    """A job as the API would return it."""
    now = datetime.now(UTC)
    return Job(
        id=str(uuid.uuid4()),
        status=status,
        task=task,
        model="gemini-3.5-flash-lite",
        created_at=now,
        finished_at=now if status in ("succeeded", "failed", "cancelled") else None,
        result=result
        if result is not None
        else ({"text": "a picture"} if status == "succeeded" else None),
    )


class FakeClient:
    """Records every call; ``fail_on`` maps a submit's number (1-based) to what it raises."""

    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []
        self.by_key: dict[str, Job] = {}
        self.jobs: dict[str, Job] = {}
        self.fail_on: dict[int, BaseException] = {}
        self.estimates: list[dict[str, Any]] = []
        self.estimate_answer: Callable[[Sequence[Any]], dict[str, Any]] = lambda _: {}
        self.cancelled: list[str] = []
        self.finish: Callable[[Job], Job] = lambda job: job.model_copy(
            update={"status": "succeeded", "result": {"text": "a picture"}}
        )
        self.wait_timeout_for: set[str] = set()
        self.annotated: bytes = b""
        self.masks: list[tuple[str, int]] = []
        self.page_sizes: list[int] = []

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def submit(self, images: Sequence[Any], **fields: Any) -> Job:
        number = len(self.submitted) + 1
        if number in self.fail_on:
            raise self.fail_on[number]
        self.submitted.append({"images": list(images), **fields})
        key = fields["idempotency_key"]
        if key not in self.by_key:
            job = make_job(fields["task"], "queued")
            self.by_key[key] = job
            self.jobs[job.id] = job
        return self.by_key[key]

    def estimate(self, images: Sequence[Any], **fields: Any) -> dict[str, Any]:
        self.estimates.append({"images": list(images), **fields})
        return self.estimate_answer(images)

    def job(self, job_id: str) -> Job:
        if job_id not in self.jobs:
            raise VisionqError(404, "job_not_found", f"No job {job_id} for this API key.")
        return self.jobs[job_id]

    def cancel(self, job_id: str) -> Job:
        self.cancelled.append(job_id)
        job = self.jobs[job_id].model_copy(update={"status": "cancelled"})
        self.jobs[job_id] = job
        return job

    def wait(
        self,
        job_ids: Sequence[str],
        *,
        timeout: float | None = None,
        on_update: Callable[[dict[str, Job]], None] | None = None,
    ) -> dict[str, Job]:
        for job_id in job_ids:
            if job_id not in self.wait_timeout_for:
                self.jobs[job_id] = self.finish(self.jobs[job_id])
        latest = {job_id: self.jobs[job_id] for job_id in job_ids}
        if on_update is not None:
            on_update(latest)
        if any(not job.done for job in latest.values()):
            raise TimeoutError("still unfinished")
        return latest

    def retry(self, job_id: str, *, idempotency_key: str | None = None) -> Job:
        old = self.jobs[job_id]
        job = make_job(old.task, "queued").model_copy(update={"retry_of": old.id})
        self.jobs[job.id] = job
        return job

    def iter_jobs(self, *, status: str | None = None, page_size: int = 100) -> Iterator[Job]:
        self.page_sizes.append(page_size)
        for job in reversed(list(self.jobs.values())):
            if status is None or job.status == status:
                yield job

    def annotated_png(self, job_id: str) -> bytes:
        return self.annotated

    def mask_png(self, job_id: str, index: int) -> bytes:
        self.masks.append((job_id, index))
        return b"mask"


def install_fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    """Make a FakeClient the client every user command gets, with an API key set."""
    client = FakeClient()
    monkeypatch.setattr("visionq.cli.common.VisionqClient", lambda *_a, **_k: client)
    monkeypatch.setenv("VISIONQ_API_KEY", "vq-test")
    return client


def run(*args: str) -> Result:
    """Run `visionq ARGS` in-process at 80 columns."""
    from visionq.cli.main import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})
