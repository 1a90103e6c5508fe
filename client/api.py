"""A small typed client of the visionq HTTP API (HTTP only: no server code imported)."""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from client.models import Job, JobPage

DEFAULT_URL = "http://127.0.0.1:8000"


class VisionqError(Exception):
    """The API refused a request; ``code`` and ``message`` come from its error body."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{message} ({code}, HTTP {status})")
        self.status = status
        self.code = code
        self.message = message
        # Seconds the server asked us to wait (Retry-After of a 429 or 503), if any.
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth trying again later: rate limited, unavailable, or not reached at all."""
        return self.status in (0, 429, 502, 503, 504)


class VisionqConnectionError(VisionqError):
    """The API could not be reached at all."""


ImageSource = str | Path | bytes


def _image_part(index: int, image: ImageSource) -> tuple[str, tuple[str, bytes, str]]:
    if isinstance(image, bytes):
        return ("image", (f"image-{index}", image, "application/octet-stream"))
    path = Path(image)
    # The server reads the format from the bytes; the name is only for people.
    return ("image", (path.name, path.read_bytes(), "application/octet-stream"))


class VisionqClient:
    """Submit jobs and read them back. Use as a context manager, or call ``close()``."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> VisionqClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise VisionqConnectionError(
                0,
                "unreachable",
                f"cannot reach the visionq API at {self.base_url} ({exc}); is it running? "
                "Set --url or VISIONQ_URL",
            ) from exc
        if response.is_error:
            raise _error_from(response)
        return response

    def submit(
        self,
        images: Sequence[ImageSource],
        *,
        task: str,
        prompt: str | None = None,
        labels: Sequence[str] | None = None,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        schema: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        retries: int = 8,
    ) -> Job:
        """Submit one job with ``images`` (paths or bytes); returns it as queued.

        ``schema`` (task custom) is a JSON Schema the answer must satisfy. The request
        carries an Idempotency-Key (``idempotency_key``, or a fresh one), so it is retried
        safely, up to ``retries`` times, when the API is rate limiting (429, after its
        Retry-After), unavailable or unreachable: a retry never makes a second job.
        """
        response = self._post_job(
            "/v1/jobs",
            images,
            task=task,
            prompt=prompt,
            labels=labels,
            model=model,
            options=options,
            schema=schema,
            headers={"Idempotency-Key": idempotency_key or f"vq-{uuid.uuid4().hex}"},
            retries=retries,
        )
        return Job.model_validate(response.json())

    def estimate(
        self,
        images: Sequence[ImageSource],
        *,
        task: str,
        prompt: str | None = None,
        labels: Sequence[str] | None = None,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        schema: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The token and cost estimate of a job, without running it (same fields as submit)."""
        response = self._post_job(
            "/v1/estimate",
            images,
            task=task,
            prompt=prompt,
            labels=labels,
            model=model,
            options=options,
            schema=schema,
        )
        estimate: dict[str, Any] = response.json()
        return estimate

    def _post_job(
        self,
        path: str,
        images: Sequence[ImageSource],
        *,
        task: str,
        prompt: str | None,
        labels: Sequence[str] | None,
        model: str | None,
        options: dict[str, Any] | None,
        schema: dict[str, Any] | None,
        headers: dict[str, str] | None = None,
        retries: int = 0,
    ) -> httpx.Response:
        """POST a job's multipart form (built once) to ``path``; transient errors are retried
        up to ``retries`` times, after the server's Retry-After or a backoff."""
        data: dict[str, Any] = {"task": task}
        if prompt is not None:
            data["prompt"] = prompt
        if model is not None:
            data["model"] = model
        if labels:
            data["labels"] = json.dumps(list(labels))
        if options:
            data["options"] = json.dumps(options)
        if schema is not None:
            data["schema"] = json.dumps(schema)
        files = [_image_part(index, image) for index, image in enumerate(images)]
        for attempt in range(retries + 1):
            try:
                return self._request("POST", path, data=data, files=files, headers=headers)
            except VisionqError as exc:
                if not exc.transient or attempt == retries:
                    raise
                time.sleep(_retry_delay(exc, attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def job(self, job_id: str) -> Job:
        return Job.model_validate(self._request("GET", f"/v1/jobs/{job_id}").json())

    def jobs(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """One page of jobs, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        return JobPage.model_validate(self._request("GET", "/v1/jobs", params=params).json())

    def iter_jobs(self, *, status: str | None = None, page_size: int = 100) -> Iterator[Job]:
        """Every job, newest first, fetching pages as needed."""
        cursor = None
        while True:
            page = self.jobs(status=status, limit=page_size, cursor=cursor)
            yield from page.jobs
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> Job:
        return Job.model_validate(self._request("POST", f"/v1/jobs/{job_id}/cancel").json())

    def retry(self, job_id: str, *, idempotency_key: str | None = None, retries: int = 8) -> Job:
        """A new job running finished job ``job_id`` again (same stored images, task,
        prompt, labels, model, options and schema); returns it as queued (``retry_of`` is
        ``job_id``). Retried like ``submit`` under one Idempotency-Key: never two jobs.
        """
        headers = {"Idempotency-Key": idempotency_key or f"vq-{uuid.uuid4().hex}"}
        for attempt in range(retries + 1):
            try:
                response = self._request("POST", f"/v1/jobs/{job_id}/retry", headers=headers)
                return Job.model_validate(response.json())
            except VisionqError as exc:
                if not exc.transient or attempt == retries:
                    raise
                time.sleep(_retry_delay(exc, attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def annotated_png(self, job_id: str) -> bytes:
        """The detect job's image with its boxes and labels drawn on it."""
        return self._request("GET", f"/v1/jobs/{job_id}/annotated.png").content

    def mask_png(self, job_id: str, index: int) -> bytes:
        """Segmentation mask ``index`` of a segment job: a binary PNG of its box's size."""
        return self._request("GET", f"/v1/jobs/{job_id}/masks/{index}.png").content

    def wait(
        self,
        job_ids: Sequence[str],
        *,
        timeout: float | None = None,
        poll_interval: float = 0.25,
        on_update: Callable[[dict[str, Job]], None] | None = None,
    ) -> dict[str, Job]:
        """Poll until every job has ended; TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        latest: dict[str, Job] = {}
        while True:
            for job_id in job_ids:
                if job_id not in latest or not latest[job_id].done:
                    latest[job_id] = self.job(job_id)
            if on_update is not None:
                on_update(latest)
            if all(job.done for job in latest.values()):
                return latest
            if deadline is not None and time.monotonic() > deadline:
                pending = [job_id for job_id, job in latest.items() if not job.done]
                raise TimeoutError(f"{len(pending)} job(s) still unfinished: {', '.join(pending)}")
            time.sleep(poll_interval)


def _retry_delay(error: VisionqError, attempt: int) -> float:
    """The server's Retry-After when it gave one, else full-jitter backoff (cap 30 s)."""
    if error.retry_after is not None:
        return min(error.retry_after, 300.0)
    return random.uniform(0, min(30.0, 0.5 * 2**attempt))


def _error_from(response: httpx.Response) -> VisionqError:
    retry_after: float | None = None
    with contextlib.suppress(ValueError):
        retry_after = float(response.headers.get("retry-after", ""))
    if retry_after is not None and not 0 <= retry_after < math.inf:
        retry_after = None  # a nonsense header: fall back to our own backoff
    try:
        error = response.json()["error"]
        return VisionqError(
            response.status_code, str(error["code"]), str(error["message"]),
            retry_after=retry_after,
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:200] or response.reason_phrase
        return VisionqError(response.status_code, "http_error", text, retry_after=retry_after)
