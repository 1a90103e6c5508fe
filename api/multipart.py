"""Read a multipart/form-data job request: image file parts and text fields, within limits."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from typing import Any

from fastapi import Request
from pydantic_core import from_json
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.types import Message

from visionq.api.errors import ApiError
from visionq.api.priority import parse_form_priority
from visionq.api.rawjob import RawJob, image_label, too_large
from visionq.models.settings import Settings
from visionq.models.table_base import URL_MAX_CHARS

FORM_FIELDS = {"task", "prompt", "model", "labels", "options", "schema", "image", "webhook_url",
               "priority"}  # fmt: skip


class BodyTooLargeError(Exception):
    """The request body grew past the limit while being read."""


def limited_request(request: Request, limit: int) -> Request:
    """The same request, whose body reading stops at ``limit`` bytes (BodyTooLargeError).

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
            raise BodyTooLargeError
        return message

    return Request(request.scope, counting_receive)


async def read_form(
    request: Request,
    settings: Settings,
    *,
    max_files: int,
    too_many_files: ApiError,
    field_too_large: Callable[[str], ApiError],
    max_fields: int = 1000,
    max_part_size: int = 1024 * 1024,
) -> FormData:
    """The multipart form of ``request``, read within VISIONQ_MAX_REQUEST_BYTES (413);
    ``too_many_files`` over ``max_files`` file parts, ``field_too_large(reason)`` for a text
    field over ``max_part_size``, 400 invalid_multipart for the rest (a body without its
    closing boundary included)."""
    limited = limited_request(request, settings.max_request_bytes)
    try:
        async with aclosing(limited.stream()) as stream:
            parser = _ClosingBoundaryParser(
                limited.headers,
                stream,
                max_files=max_files,
                max_fields=max_fields,
                max_part_size=max_part_size,
            )
            form = await parser.parse()
    except UnterminatedBodyError as exc:
        raise ApiError(
            "invalid_multipart",
            "The multipart body ended before its closing boundary (the line --BOUNDARY--, "
            "BOUNDARY being the Content-Type's boundary): the upload was cut short, or the "
            "body was built without it. Send the complete body.",
        ) from exc
    except BodyTooLargeError as exc:
        raise too_large(
            "request", settings.max_request_bytes + 1, settings.max_request_bytes
        ) from exc
    except Exception as exc:  # python-multipart raises several parser-specific types
        reason = str(exc.message if isinstance(exc, MultiPartException) else exc).rstrip(".")
        if "Too many files" in reason:
            raise too_many_files from exc
        if "exceeded maximum size" in reason:
            raise field_too_large(reason) from exc
        raise ApiError(
            "invalid_multipart", f"The multipart body cannot be parsed: {reason}."
        ) from exc
    return form


class UnterminatedBodyError(Exception):
    """The multipart body ended before its closing boundary."""


class _ClosingBoundaryParser(MultiPartParser):
    """Starlette's multipart parser, noting whether the closing boundary was read.

    python-multipart's finalize does not check it (a TODO there): a body cut short parses
    as the parts before the cut, the last one silently dropped, so the job would be refused
    for a field it did send (missing_task) or run on fewer images than were sent.
    """

    closed = False

    def on_end(self) -> None:  # called by python-multipart at the closing boundary only
        self.closed = True

    async def parse(self) -> FormData:
        form = await super().parse()
        if not self.closed:
            # Every spooled file, the cut part's too (it is in no form item to close).
            for file in self._files_to_close_on_error:
                file.close()
            raise UnterminatedBodyError
        return form


async def read_multipart(request: Request, settings: Settings) -> RawJob:
    """The job fields of a multipart body; ApiError (400, 413, 422) naming what is wrong."""
    form = await read_form(
        request,
        settings,
        max_files=settings.max_images_per_job,
        too_many_files=ApiError(
            "too_many_images",
            f"More than {settings.max_images_per_job} images; that is the limit per job.",
        ),
        # A text field over Starlette's 1 MB.
        field_too_large=lambda reason: ApiError(
            "payload_too_large", f"A form field is too large: {reason}."
        ),
    )
    try:
        return await _raw_from_form(form, settings)
    finally:
        await form.close()


async def _raw_from_form(form: FormData, settings: Settings) -> RawJob:
    unknown = sorted(set(form.keys()) - FORM_FIELDS)
    if unknown:
        raise ApiError(
            "invalid_request",
            f"Unknown form fields {unknown}; expected {sorted(FORM_FIELDS)}.",
        )
    images = []
    names: list[str | None] = []
    for index, part in enumerate(form.getlist("image")):
        if not isinstance(part, UploadFile):
            raise ApiError("invalid_request", f"Form field image #{index + 1} must be a file.")
        data = await part.read(settings.max_image_bytes + 1)
        if len(data) > settings.max_image_bytes:
            what = image_label(part.filename, index)
            raise too_large(what[0].lower() + what[1:], part.size or len(data),
                            settings.max_image_bytes)  # fmt: skip
        images.append(data)
        names.append(part.filename)
    return RawJob(
        task=_text_field(form, "task"),
        prompt=_text_field(form, "prompt"),
        model=_text_field(form, "model"),
        labels=_labels_field(form),
        options=_json_object_field(form, "options") or {},
        schema=_json_object_field(form, "schema"),
        images=images,
        image_names=names,
        webhook_url=_webhook_url_field(form),
        priority=parse_form_priority(_text_field(form, "priority")),
    )


def _webhook_url_field(form: FormData) -> str | None:
    """The webhook_url field within the bounds of the JSON body's (JobCreate.webhook_url)."""
    value = _text_field(form, "webhook_url")
    if value is not None and not 1 <= len(value) <= URL_MAX_CHARS:
        raise ApiError(
            "invalid_request",
            f"webhook_url: {len(value):,} characters; give a URL of 1 to {URL_MAX_CHARS:,} "
            "characters.",
        )
    return value


def _text_field(form: FormData, name: str) -> str | None:
    values = form.getlist(name)
    if len(values) > 1:
        raise ApiError("invalid_request", f"Form field {name!r} is given more than once.")
    if not values:
        return None
    value = values[0]
    if not isinstance(value, str):
        raise ApiError("invalid_request", f"Form field {name!r} must be text, not a file.")
    return value


def _labels_field(form: FormData) -> list[str] | None:
    if any(not isinstance(v, str) for v in form.getlist("labels")):
        raise ApiError("invalid_request", "Form field 'labels' must be text, not a file.")
    values = [v for v in form.getlist("labels") if isinstance(v, str)]
    if not values:
        return None
    if len(values) == 1:
        single = values[0].strip()
        if single.startswith("["):
            try:
                decoded = parse_json(single)
            except ValueError as exc:
                raise ApiError("invalid_request", f"labels is not valid JSON: {exc}.") from exc
            if not isinstance(decoded, list) or not all(isinstance(v, str) for v in decoded):
                raise ApiError("invalid_request", "labels must be a JSON list of strings.")
            return decoded
        return [part.strip() for part in single.split(",")]
    return values


def parse_json(text: str) -> Any:
    """Strict JSON, as in JSON bodies: no NaN, no lone surrogates, bounded nesting and
    number sizes (``json.loads`` raises RecursionError or an int-size ValueError instead)."""
    return from_json(text, allow_inf_nan=False)


def _json_object_field(form: FormData, name: str) -> dict[str, Any] | None:
    raw = _text_field(form, name)
    if raw is None or not raw.strip():
        return None
    code = f"invalid_{name}"  # invalid_options, invalid_schema
    try:
        decoded = parse_json(raw)
    except ValueError as exc:
        raise ApiError(code, f"{name} is not valid JSON: {exc}.") from exc
    if not isinstance(decoded, dict):
        raise ApiError(code, f"{name} must be a JSON object.")
    return decoded
