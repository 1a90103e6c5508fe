"""Turn a POST /v1/jobs request (multipart or JSON) into a validated job and its images."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from pydantic_core import from_json
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.types import Message

from api.errors import ApiError
from api.schemas import JobCreate
from api.urlfetch import FetchPolicy, UrlFetchError, fetch_image
from models.settings import Settings
from vision.formats import ImageRejectedError
from vision.prepare import PreparedImage, prepare_image
from vision.structured import MAX_SCHEMA_CHARS, InvalidSchemaError, check_schema
from vision.tasks import JobOptions, JobSpecError, TaskKind, validate_job

_MODEL_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}$")
_FORM_FIELDS = {"task", "prompt", "model", "labels", "options", "schema", "image"}
# JSON containers nested deeper than this in a schema are refused: jsonschema checks a
# schema recursively, and ~120 levels exhaust Python's recursion limit.
MAX_SCHEMA_DEPTH = 64


@dataclass
class RawJob:
    """The request's fields before validation."""

    task: str | None = None
    prompt: str | None = None
    model: str | None = None
    labels: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    schema: Any = None
    images: list[bytes] = field(default_factory=list)
    # JSON requests may give images by URL: fetched (see api/urlfetch.py) before admission.
    image_urls: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AdmittedJob:
    task: TaskKind
    prompt: str | None
    model: str
    labels: list[str] | None
    options: dict[str, Any]
    schema: dict[str, Any] | None
    # Upright, decodable, in a mode Gemini takes: what is stored and sent.
    images: list[PreparedImage]


def _too_large(what: str, size: int, limit: int) -> ApiError:
    return ApiError(
        413, "payload_too_large", f"The {what} is {size:,} bytes; the limit is {limit:,} bytes."
    )


async def read_job_request(request: Request, settings: Settings) -> RawJob:
    """Read the body as multipart form data or JSON, within the size limits."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_request_bytes:
        raise _too_large("request", int(declared), settings.max_request_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _read_multipart(request, settings)
    if content_type in ("application/json", ""):
        return await _read_json(request, settings)
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Send the job as multipart/form-data or application/json, not {content_type!r}.",
    )


async def _read_json(request: Request, settings: Settings) -> RawJob:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > settings.max_request_bytes:
            raise _too_large("request", len(body), settings.max_request_bytes)
    try:
        payload = JobCreate.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise ApiError(422, _json_error_code(exc), _describe(exc)) from exc
    images, urls = await _json_images(payload, settings)
    return RawJob(
        task=payload.task,
        prompt=payload.prompt,
        model=payload.model,
        labels=payload.labels,
        options=payload.options,
        schema=payload.schema_,
        images=images,
        image_urls=urls,
    )


async def _json_images(payload: JobCreate, settings: Settings) -> tuple[list[bytes], list[str]]:
    """The bytes of every image, in order: decoded from base64 or downloaded from its URL."""
    if len(payload.images) > settings.max_images_per_job:
        raise ApiError(
            422,
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
    for index, item in enumerate(payload.images):
        if item.url is None:
            images.append(_decode_base64(item.data or "", index))
            continue
        try:
            fetched = await run_in_threadpool(fetch_image, item.url, policy)
        except UrlFetchError as exc:
            raise ApiError(exc.status, exc.code, f"images[{index}].url: {exc.message}") from exc
        images.append(fetched.data)
        urls.append(item.url)
    return images, urls


def _json_error_code(exc: ValidationError) -> str:
    """invalid_options / invalid_schema when only that field is wrong, else invalid_request."""
    fields = {str(error["loc"][0]) if error["loc"] else "" for error in exc.errors()}
    only = fields.pop() if len(fields) == 1 else ""
    return {"options": "invalid_options", "schema": "invalid_schema"}.get(only, "invalid_request")


def _describe(exc: ValidationError) -> str:
    messages = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"])
        messages.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(messages)


def _decode_base64(data: str, index: int) -> bytes:
    cleaned = "".join(data.split())
    if cleaned.startswith("data:") and "," in cleaned:
        cleaned = cleaned.split(",", 1)[1]
    cleaned = cleaned.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(
            422, "invalid_base64", f"images[{index}].data is not valid base64: {exc}."
        ) from exc


class _BodyTooLargeError(Exception):
    """The request body grew past the limit while being read."""


def _limited(request: Request, limit: int) -> Request:
    """The same request, whose body reading stops at ``limit`` bytes.

    Content-Length is checked up front, but a chunked body has none: without this, a
    huge upload would be parsed and spooled to disk before any check.
    """
    received = 0
    receive = request.receive

    async def counting_receive() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise _BodyTooLargeError
        return message

    return Request(request.scope, counting_receive)


async def _read_multipart(request: Request, settings: Settings) -> RawJob:
    limited = _limited(request, settings.max_request_bytes)
    try:
        form = await limited.form(max_files=settings.max_images_per_job, max_fields=1000)
    except _BodyTooLargeError as exc:
        raise _too_large(
            "request", settings.max_request_bytes + 1, settings.max_request_bytes
        ) from exc
    except Exception as exc:  # python-multipart raises several parser-specific types
        reason = str(exc.detail if isinstance(exc, HTTPException) else exc).rstrip(".")
        if "Too many files" in reason:
            raise ApiError(
                422, "too_many_images",
                f"More than {settings.max_images_per_job} images; that is the limit per job.",
            ) from exc  # fmt: skip
        if "exceeded maximum size" in reason:  # a text field over Starlette's 1 MB
            raise ApiError(
                413, "payload_too_large", f"A form field is too large: {reason}."
            ) from exc
        raise ApiError(
            400, "invalid_multipart", f"The multipart body cannot be parsed: {reason}."
        ) from exc
    try:
        return await _raw_from_form(form, settings)
    finally:
        await form.close()


async def _raw_from_form(form: FormData, settings: Settings) -> RawJob:
    unknown = sorted(set(form.keys()) - _FORM_FIELDS)
    if unknown:
        raise ApiError(
            422,
            "invalid_request",
            f"Unknown form fields {unknown}; expected {sorted(_FORM_FIELDS)}.",
        )
    images = []
    for index, part in enumerate(form.getlist("image")):
        if not isinstance(part, UploadFile):
            raise ApiError(422, "invalid_request", f"Form field image #{index + 1} must be a file.")
        data = await part.read(settings.max_image_bytes + 1)
        if len(data) > settings.max_image_bytes:
            raise _too_large(
                f"image {part.filename or index + 1}",
                part.size or len(data),
                settings.max_image_bytes,
            )
        images.append(data)
    return RawJob(
        task=_text_field(form, "task"),
        prompt=_text_field(form, "prompt"),
        model=_text_field(form, "model"),
        labels=_labels_field(form),
        options=_json_object_field(form, "options") or {},
        schema=_json_object_field(form, "schema"),
        images=images,
    )


def _text_field(form: FormData, name: str) -> str | None:
    values = form.getlist(name)
    if len(values) > 1:
        raise ApiError(422, "invalid_request", f"Form field {name!r} is given more than once.")
    if not values:
        return None
    value = values[0]
    if not isinstance(value, str):
        raise ApiError(422, "invalid_request", f"Form field {name!r} must be text, not a file.")
    return value


def _labels_field(form: FormData) -> list[str] | None:
    if any(not isinstance(v, str) for v in form.getlist("labels")):
        raise ApiError(422, "invalid_request", "Form field 'labels' must be text, not a file.")
    values = [v for v in form.getlist("labels") if isinstance(v, str)]
    if not values:
        return None
    if len(values) == 1:
        single = values[0].strip()
        if single.startswith("["):
            try:
                decoded = _parse_json(single)
            except ValueError as exc:
                raise ApiError(422, "invalid_request", f"labels is not valid JSON: {exc}.") from exc
            if not isinstance(decoded, list) or not all(isinstance(v, str) for v in decoded):
                raise ApiError(422, "invalid_request", "labels must be a JSON list of strings.")
            return decoded
        return [part.strip() for part in single.split(",")]
    return values


def _parse_json(text: str) -> Any:
    """Strict JSON, as in JSON bodies: no NaN, no lone surrogates, bounded nesting and
    number sizes (``json.loads`` raises RecursionError or an int-size ValueError instead)."""
    return from_json(text, allow_inf_nan=False)


def _json_object_field(form: FormData, name: str) -> dict[str, Any] | None:
    raw = _text_field(form, name)
    if raw is None or not raw.strip():
        return None
    code = f"invalid_{name}"  # invalid_options, invalid_schema
    try:
        decoded = _parse_json(raw)
    except ValueError as exc:
        raise ApiError(422, code, f"{name} is not valid JSON: {exc}.") from exc
    if not isinstance(decoded, dict):
        raise ApiError(422, code, f"{name} must be a JSON object.")
    return decoded


MAX_LABEL_CHARS = 200


def _strings(value: object) -> Iterator[str]:
    """Every string in a JSON value, keys included (iteratively: no recursion limit)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _no_nul(raw: RawJob) -> None:
    """Refuse NUL characters (PostgreSQL text cannot hold them, and no prompt needs one) and
    lone surrogates (not encodable as UTF-8, so no database can store them)."""
    texts = [raw.task, raw.prompt, raw.model, *(raw.labels or []), *_strings(raw.schema)]
    for text in texts:
        if text is None:
            continue
        if "\x00" in text:
            raise ApiError(422, "invalid_text", "Text fields must not contain NUL characters.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ApiError(
                422, "invalid_text", f"Text fields must be valid Unicode: {exc}."
            ) from exc


def admit(raw: RawJob, settings: Settings) -> AdmittedJob:
    """Validate every field and every image; raise ApiError naming the first problem."""
    _no_nul(raw)
    if raw.labels and any(len(label) > MAX_LABEL_CHARS for label in raw.labels):
        raise ApiError(
            422, "label_too_long", f"Each label may have at most {MAX_LABEL_CHARS} characters."
        )
    task = _task(raw.task)
    model = _model(raw.model, settings)
    try:
        options = JobOptions.model_validate(raw.options)
    except ValidationError as exc:
        raise ApiError(422, "invalid_options", f"options: {_describe(exc)}") from exc
    if len(raw.images) > settings.max_images_per_job:
        raise ApiError(
            422,
            "too_many_images",
            f"{len(raw.images)} images; at most {settings.max_images_per_job} per job.",
        )
    labels = [label.strip() for label in raw.labels] if raw.labels is not None else None
    if raw.schema is not None:
        _check_schema_shape(raw.schema)
    try:
        schema = check_schema(raw.schema) if raw.schema is not None else None
        validate_job(
            task,
            prompt=raw.prompt,
            labels=labels,
            images=len(raw.images),
            schema=schema,
            options=options.model_dump(),
        )
    except JobSpecError as exc:
        raise ApiError(422, exc.code, exc.message) from exc
    except InvalidSchemaError as exc:
        raise ApiError(422, "invalid_schema", f"schema: {exc}") from exc
    images = [_admit_image(data, index, settings) for index, data in enumerate(raw.images)]
    return AdmittedJob(
        task=task,
        prompt=raw.prompt.strip() if raw.prompt and raw.prompt.strip() else None,
        model=model,
        labels=labels,
        options=options.model_dump(exclude_defaults=True),
        schema=schema,
        images=images,
    )


def _check_schema_shape(schema: object) -> None:
    """Refuse what JSON Schema validation cannot be trusted with: non-finite numbers (not
    JSON: the database and Gemini refuse them), deep nesting, and a schema over the size
    limit."""
    stack: list[tuple[object, int]] = [(schema, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ApiError(422, "invalid_schema", "schema: numbers must be finite, not NaN or ±∞.")
        if isinstance(item, dict | list):
            if depth > MAX_SCHEMA_DEPTH:
                raise ApiError(
                    422,
                    "invalid_schema",
                    f"schema: nested more than {MAX_SCHEMA_DEPTH} levels deep.",
                )
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    size = len(json.dumps(schema))
    if size > MAX_SCHEMA_CHARS:
        raise ApiError(
            422,
            "schema_too_large",
            f"The schema is {size:,} characters as JSON; at most {MAX_SCHEMA_CHARS:,}.",
        )


def _task(value: str | None) -> TaskKind:
    choices = ", ".join(kind.value for kind in TaskKind)
    if not value:
        raise ApiError(422, "missing_task", f"Give a task: one of {choices}.")
    try:
        return TaskKind(value.strip().lower())
    except ValueError as exc:
        raise ApiError(
            422, "unknown_task", f"Unknown task {value!r}; use one of {choices}."
        ) from exc


def _model(value: str | None, settings: Settings) -> str:
    model = (value or "").strip().removeprefix("models/") or settings.default_model
    if not _MODEL_NAME.match(model):
        raise ApiError(422, "invalid_model", f"{model!r} is not a Gemini model name.")
    return model


def _admit_image(data: bytes, index: int, settings: Settings) -> PreparedImage:
    if len(data) > settings.max_image_bytes:
        raise _too_large(f"image #{index + 1}", len(data), settings.max_image_bytes)
    if not data:
        raise ApiError(422, "empty_image", f"Image #{index + 1} is empty.")
    try:
        prepared = prepare_image(data, max_pixels=settings.max_image_pixels)
    except ImageRejectedError as exc:
        status = {"unsupported_media_type": 415, "image_too_large": 413}.get(exc.code, 422)
        raise ApiError(status, exc.code, f"Image #{index + 1}: {exc.message}") from exc
    return prepared
