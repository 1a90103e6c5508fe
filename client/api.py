"""A small typed client of the visionq HTTP API (HTTP only: no server code imported)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from visionq.client.errors import (
    VisionqConnectionError,
    VisionqError,
    error_from,
    retry_delay,
    retry_notice,
    transport_problem,
)
from visionq.client.inputs import ImageSource, image_list, job_request, text_list, tier_options
from visionq.client.models import Job, JobPage

if TYPE_CHECKING:
    from visionq.client.batches import BatchClient
    from visionq.client.webhooks import WebhookClient

# Re-exported: callers import the errors and the retry delay from here.
__all__ = ["VisionqClient", "VisionqConnectionError", "VisionqError", "retry_delay"]

DEFAULT_URL = "http://127.0.0.1:8000"


# The page size every visionq API accepts: VISIONQ_PAGE_SIZE_MAX (the longest page, and the
# most ids in one GET /v1/jobs?ids=) can be set no lower than this (models/settings.py). The
# client never asks for more in one request: wait()'s id batches, iter_jobs()'s pages.
PAGE_SIZE_MIN = 100
# wait(): the longest pause between two tries while the API is unreachable or overloaded,
# so that a restarted API is noticed within seconds.
WAIT_RETRY_CAP_S = 5.0


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

    @property
    def batches(self) -> BatchClient:
        """The batch routes: create a batch, add items in bulk, follow, export, re-run."""
        # Imported here: client/batches.py imports this module (its errors and retry delay).
        from visionq.client.batches import BatchClient  # noqa: PLC0415

        return BatchClient(self)

    @property
    def webhooks(self) -> WebhookClient:
        """The webhook routes: endpoints, secrets and rotation, delivery log, replay."""
        from visionq.client.webhooks import WebhookClient  # noqa: PLC0415

        return WebhookClient(self)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request to the API (``path`` under its URL; ``kwargs`` as httpx takes them);
        VisionqError for an error answer, VisionqConnectionError if it cannot be reached."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.is_error:
            raise error_from(response)
        return response

    @contextlib.contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A request whose answer is read as it arrives (``response.iter_bytes()``); errors
        as ``request`` raises them, a connection lost midway too."""
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if response.is_error:
                    response.read()
                    raise error_from(response)
                yield response
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: httpx.TransportError) -> VisionqConnectionError:
        return VisionqConnectionError(
            0,
            "unreachable",
            f"cannot reach the visionq API (no answer from {self.base_url}: "
            f"{transport_problem(exc)}); is it running? Set --url or VISIONQ_URL",
        )

    def submit(
        self,
        images: ImageSource | Sequence[ImageSource],
        *,
        task: str,
        prompt: str | None = None,
        labels: str | Sequence[str] | None = None,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        schema: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        retries: int = 8,
        tier: str | None = None,
        deadline_s: int | None = None,
        webhook_url: str | None = None,
        priority: int | None = None,
    ) -> Job:
        """Submit one job with ``images``; returns it as queued.

        An image is a path, an http(s) URL (str; the API fetches it) or bytes; one alone is
        one image. ``labels`` is a list or one comma-separated string ("cat,dog").
        ``schema`` (task custom) is a JSON Schema the answer must satisfy. The request
        carries an Idempotency-Key (``idempotency_key``, or a fresh one), so it is retried
        safely, up to ``retries`` times, when the API is rate limiting (429, after its
        Retry-After), unavailable or unreachable: a retry never makes a second job.
        ``tier`` and ``deadline_s`` set options.tier and options.deadline_s.
        ``webhook_url``: where the job's end event is also POSTed (signed with the secret of
        ``webhooks.callbacks()``). ``priority``: 0..9, 9 first among your own waiting jobs
        (the API's default when None).
        """
        response = self._post_job(
            "/v1/jobs",
            images,
            task=task,
            prompt=prompt,
            labels=labels,
            model=model,
            options=tier_options(options, tier, deadline_s),
            schema=schema,
            headers={"Idempotency-Key": idempotency_key or f"vq-{uuid.uuid4().hex}"},
            retries=retries,
            webhook_url=webhook_url,
            priority=priority,
        )
        return Job.model_validate(response.json())

    def estimate(
        self,
        images: ImageSource | Sequence[ImageSource],
        *,
        task: str,
        prompt: str | None = None,
        labels: str | Sequence[str] | None = None,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        schema: dict[str, Any] | None = None,
        tier: str | None = None,
        deadline_s: int | None = None,
    ) -> dict[str, Any]:
        """The token and cost estimate of a job, without running it (same fields as submit)."""
        response = self._post_job(
            "/v1/estimate",
            images,
            task=task,
            prompt=prompt,
            labels=labels,
            model=model,
            options=tier_options(options, tier, deadline_s),
            schema=schema,
        )
        estimate: dict[str, Any] = response.json()
        return estimate

    def _post_job(
        self,
        path: str,
        images: ImageSource | Sequence[ImageSource],
        *,
        task: str,
        prompt: str | None,
        labels: str | Sequence[str] | None,
        model: str | None,
        options: dict[str, Any] | None,
        schema: dict[str, Any] | None,
        headers: dict[str, str] | None = None,
        retries: int = 0,
        webhook_url: str | None = None,
        priority: int | None = None,
    ) -> httpx.Response:
        """POST a job (built once: multipart, or JSON when an image is a URL) to ``path``;
        transient errors are retried up to ``retries`` times, after the server's
        Retry-After or a backoff."""
        body = job_request(
            image_list(images),
            task=task,
            prompt=prompt,
            labels=text_list("labels", labels),
            model=model,
            options=options,
            schema=schema,
        )
        if webhook_url is not None:  # a field of the JSON body or of the form alike
            body["json" if "json" in body else "data"]["webhook_url"] = webhook_url
        if priority is not None:  # a JSON integer, or the form's text
            if "json" in body:
                body["json"]["priority"] = priority
            else:
                body["data"]["priority"] = str(priority)
        return self.post_retried(path, retries, headers=headers, **body)

    def post_retried(self, path: str, retries: int, **kwargs: Any) -> httpx.Response:
        """POST to ``path`` (``kwargs`` as for ``request``); transient errors (429, 502-504,
        unreachable) retried up to ``retries`` times after Retry-After or a backoff. Only
        for requests a repeat cannot duplicate (an Idempotency-Key, a batch item key)."""
        for attempt in range(retries + 1):
            try:
                return self.request("POST", path, **kwargs)
            except VisionqError as exc:
                if not exc.transient or attempt == retries:
                    raise
                delay = retry_delay(exc, attempt)
                retry_notice(exc, delay, attempt, retries)
                time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def job(self, job_id: str) -> Job:
        """One job, by its id or a unique prefix of it (at least 8 characters)."""
        return Job.model_validate(self.request("GET", f"/v1/jobs/{job_id}").json())

    def jobs(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """One page of jobs, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        return JobPage.model_validate(self.request("GET", "/v1/jobs", params=params).json())

    def iter_jobs(
        self, *, status: str | None = None, page_size: int = PAGE_SIZE_MIN
    ) -> Iterator[Job]:
        """Every job, newest first, fetching pages as needed."""
        cursor = None
        while True:
            page = self.jobs(status=status, limit=page_size, cursor=cursor)
            yield from page.jobs
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> Job:
        return Job.model_validate(self.request("POST", f"/v1/jobs/{job_id}/cancel").json())

    def retry(self, job_id: str, *, idempotency_key: str | None = None, retries: int = 8) -> Job:
        """A new job running finished job ``job_id`` again (same stored images, task,
        prompt, labels, model, options and schema); returns it as queued (``retry_of`` is
        ``job_id``). Retried like ``submit`` under one Idempotency-Key: never two jobs.
        """
        headers = {"Idempotency-Key": idempotency_key or f"vq-{uuid.uuid4().hex}"}
        for attempt in range(retries + 1):
            try:
                response = self.request("POST", f"/v1/jobs/{job_id}/retry", headers=headers)
                return Job.model_validate(response.json())
            except VisionqError as exc:
                if not exc.transient or attempt == retries:
                    raise
                delay = retry_delay(exc, attempt)
                retry_notice(exc, delay, attempt, retries)
                time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def annotated_png(self, job_id: str) -> bytes:
        """The detect job's image with its boxes and labels drawn on it."""
        return self.request("GET", f"/v1/jobs/{job_id}/annotated.png").content

    def mask_png(self, job_id: str, index: int) -> bytes:
        """Segmentation mask ``index`` of a segment job: a binary PNG of its box's size."""
        return self.request("GET", f"/v1/jobs/{job_id}/masks/{index}.png").content

    def wait(
        self,
        job_ids: str | Sequence[str],
        *,
        timeout: float | None = None,
        poll_interval: float = 0.25,
        max_poll_interval: float = 2.0,
        on_update: Callable[[dict[str, Job]], None] | None = None,
    ) -> dict[str, Job]:
        """Poll until every job has ended; TimeoutError after ``timeout`` seconds.

        Each round asks for all unfinished jobs at once (GET /v1/jobs?ids=, in batches of
        PAGE_SIZE_MIN), first after ``poll_interval`` seconds, the pause growing to
        ``max_poll_interval``. An API that is unreachable, restarting or overloaded
        (connection refused, 429, 502-504) does not end the wait: it is asked again with
        backoff until ``timeout``. An id may be a unique prefix; an id that names no job is
        a VisionqError (404). The result is keyed by the ids as given.
        """
        wanted = list(dict.fromkeys(text_list("job_ids", job_ids) or []))
        deadline = None if timeout is None else time.monotonic() + timeout
        full_ids: dict[str, str] = {}
        latest: dict[str, Job] = {}
        interval, failures = poll_interval, 0
        while True:
            try:
                self._poll(wanted, full_ids, latest)
                failures = 0
            except VisionqError as exc:
                if not exc.transient:
                    raise
                delay = min(retry_delay(exc, failures), WAIT_RETRY_CAP_S)
                failures += 1
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise TimeoutError(
                        f"{_pending(wanted, latest)}; the API did not answer: {exc}"
                    ) from exc
                time.sleep(delay)
                continue
            if on_update is not None:
                on_update(latest)
            if all(job_id in latest and latest[job_id].done for job_id in wanted):
                return {job_id: latest[job_id] for job_id in wanted}
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(_pending(wanted, latest))
            time.sleep(interval)
            interval = min(max_poll_interval, interval * 1.5)

    def _poll(self, wanted: list[str], full_ids: dict[str, str], latest: dict[str, Job]) -> None:
        """One round of wait(): ``latest`` (keyed by the ids as given) brought up to date."""
        for job_id in wanted:
            if job_id not in full_ids:
                if _is_full_id(job_id):
                    full_ids[job_id] = job_id
                else:  # a prefix: resolved once, by the API
                    job = self.job(job_id)
                    full_ids[job_id], latest[job_id] = job.id, job
        pending = list(
            dict.fromkeys(
                full_ids[job_id]
                for job_id in wanted
                if job_id not in latest or not latest[job_id].done
            )
        )
        found: dict[str, Job] = {}
        for start in range(0, len(pending), PAGE_SIZE_MIN):
            batch = ",".join(pending[start : start + PAGE_SIZE_MIN])
            response = self.request("GET", "/v1/jobs", params={"ids": batch})
            page = JobPage.model_validate(response.json())
            if page.missing:
                raise VisionqError(
                    404, "job_not_found", f"No job {', '.join(page.missing)} for this tenant."
                )
            found.update((job.id, job) for job in page.jobs)
        for job_id in wanted:
            if full_ids[job_id] in found:
                latest[job_id] = found[full_ids[job_id]]


def _is_full_id(job_id: str) -> bool:
    try:
        return len(job_id) == 36 and str(uuid.UUID(job_id)) == job_id
    except ValueError:
        return False


def _pending(wanted: list[str], latest: dict[str, Job]) -> str:
    pending = [job_id for job_id in wanted if job_id not in latest or not latest[job_id].done]
    return f"{len(pending)} job(s) still unfinished: {', '.join(pending)}"
