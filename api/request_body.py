"""Read a POST /v1/jobs (or /v1/estimate) request body into a RawJob: multipart form data or
JSON, whose images come as base64 or as URLs to download. Checks are in api/job_checks.py."""

from __future__ import annotations

import base64
import binascii

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from visionq.api.errors import ApiError
from visionq.api.multipart import read_multipart
from visionq.api.rawjob import RawJob, describe, too_large
from visionq.api.schemas import JobCreate
from visionq.api.urlfetch import FetchPolicy, UrlFetchError, fetch_image, shown_url
from visionq.models.settings import Settings

__all__ = ["RawJob", "read_job_request"]


async def read_job_request(request: Request, settings: Settings) -> RawJob:
    """Read the body as multipart form data or JSON, within the size limits."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_request_bytes:
        raise too_large("request", int(declared), settings.max_request_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await read_multipart(request, settings)
    if content_type in ("application/json", ""):
        return await _read_json(request, settings)
    raise ApiError(
        "unsupported_media_type",
        f"Send the job as multipart/form-data or application/json, not {content_type!r}.",
    )


async def _read_json(request: Request, settings: Settings) -> RawJob:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > settings.max_request_bytes:
            raise too_large("request", len(body), settings.max_request_bytes)
    try:
        payload = JobCreate.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(_json_error_code(exc), describe(exc)) from exc
    images, urls, names = await _json_images(payload, settings)
    return RawJob(
        task=payload.task,
        prompt=payload.prompt,
        model=payload.model,
        labels=payload.labels,
        options=payload.options,
        schema=payload.schema_,
        images=images,
        image_urls=urls,
        image_names=names,
        webhook_url=payload.webhook_url,
        priority=payload.priority,
    )


async def _json_images(
    payload: JobCreate, settings: Settings
) -> tuple[list[bytes], list[str], list[str | None]]:
    """The bytes of every image, in order: decoded from base64 or downloaded from its URL;
    the URLs; and each image's name for errors (its URL, None for base64 data)."""
    if len(payload.images) > settings.max_images_per_job:
        raise ApiError(
            "too_many_images",
            f"{len(payload.images)} images; at most {settings.max_images_per_job} per job.",
        )
    policy = FetchPolicy(
        max_bytes=settings.max_image_bytes,
        timeout_s=settings.url_fetch_timeout_s,
        max_redirects=settings.url_fetch_max_redirects,
        allowed_networks=tuple(settings.url_fetch_allowed_networks),
    )
    images: list[bytes] = []
    urls: list[str] = []
    names: list[str | None] = []
    for index, item in enumerate(payload.images):
        if item.url is None:
            images.append(decode_base64(item.data or "", index))
            names.append(None)
            continue
        try:
            fetched = await run_in_threadpool(fetch_image, item.url, policy)
        except UrlFetchError as exc:
            shown = shown_url(item.url)
            named = "" if shown in exc.message else f" {shown}"
            raise ApiError.of(exc, f"images[{index}].url{named}: {exc.message}") from exc
        images.append(fetched.data)
        urls.append(item.url)
        names.append(item.url)
    return images, urls, names


def _json_error_code(exc: ValidationError) -> str:
    """invalid_options / invalid_schema when only that field is wrong, else invalid_request."""
    fields = {str(error["loc"][0]) if error["loc"] else "" for error in exc.errors()}
    only = fields.pop() if len(fields) == 1 else ""
    return {"options": "invalid_options", "schema": "invalid_schema"}.get(only, "invalid_request")


def decode_base64(data: str, index: int) -> bytes:
    """Standard or URL-safe base64, padded or not, with whitespace or a data: URL prefix."""
    try:  # the usual case, in one pass: plain, padded standard base64
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        pass  # anything else is cleaned up first (and its error reported from there)
    cleaned = "".join(data.split())
    if cleaned.startswith("data:") and "," in cleaned:
        cleaned = cleaned.split(",", 1)[1]
    cleaned = cleaned.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(
            "invalid_base64", f"images[{index}].data is not valid base64: {exc}."
        ) from exc
