"""Read a POST /v1/batches/{id}/items body: JSON (ItemsAdd, images as base64, URL or sha256)
or multipart (the same JSON document in the ``items`` field, images as ``image`` file parts
referred to by index). The whole call is refused (422) for a malformed body or list of
items; a problem of one item's fields or images rejects that item only (api/batch_intake.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from visionq.api.batch_schemas import BatchItemIn, ItemsAdd, text_problem
from visionq.api.errors import ApiError
from visionq.api.json_body import read_body
from visionq.api.multipart import read_form
from visionq.api.rawjob import describe, too_large
from visionq.models.settings import Settings
from visionq.vision.batch_keys import MAX_ITEM_KEY_BYTES, key_bytes

FORM_FIELDS = {"items", "image"}
# Starlette's default limit for a text part is 1 MB; 500 items with long keys and prompts
# can pass it.
MAX_ITEMS_FIELD_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ImagePart:
    """A multipart ``image`` part. ``data`` is None when it is over VISIONQ_MAX_IMAGE_BYTES
    (the items using it are rejected; ``size`` says by how much)."""

    data: bytes | None
    name: str | None
    size: int


@dataclass
class RawItems:
    """The items of an add call, checked for shape only."""

    items: list[BatchItemIn]
    # Multipart bodies only: the ``image`` parts, in order (refs give their index).
    parts: list[ImagePart] = field(default_factory=list)


async def read_items_request(request: Request, settings: Settings) -> RawItems:
    """Read the body as JSON or multipart form data, within the size limits, and check the
    call's shape (check_shape); ApiError (400, 413, 415, 422) naming what is wrong."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_request_bytes:
        raise too_large("request", int(declared), settings.max_request_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        raw = await _read_multipart(request, settings)
    elif content_type in ("application/json", ""):
        raw = RawItems(items=_parse_items(await read_body(request, settings)))
    else:
        raise ApiError(
            "unsupported_media_type",
            f"Send the items as application/json or multipart/form-data, not {content_type!r}.",
        )
    check_shape(raw, settings, multipart=content_type == "multipart/form-data")
    return raw


def check_shape(raw: RawItems, settings: Settings, *, multipart: bool) -> None:
    """422 for a call that cannot be taken as a whole: too many items, a key given twice or
    not printable, an image ref the body type cannot carry or a part index out of range."""
    limit = settings.batch_max_items_per_add
    if len(raw.items) > limit:
        raise ApiError(
            "too_many_items",
            f"{len(raw.items)} items; at most {limit} per call (VISIONQ_BATCH_MAX_ITEMS_PER_ADD). "
            "Send them in several calls.",
        )
    seen: set[str] = set()
    for index, item in enumerate(raw.items):
        if not key_is_valid(item.key):
            raise ApiError(
                "invalid_item_key",
                f"items[{index}].key must be printable text without control characters "
                "(NUL, newline, tab...).",
            )
        if key_bytes(item.key) > MAX_ITEM_KEY_BYTES:
            raise ApiError(
                "invalid_item_key",
                f"items[{index}].key is {key_bytes(item.key):,} bytes of UTF-8; a key is at "
                f"most {MAX_ITEM_KEY_BYTES:,} bytes (characters outside ASCII take 2 to 4). "
                "Give the item a shorter key.",
            )
        if item.key in seen:
            raise ApiError(
                "duplicate_item_key",
                f"items[{index}].key {item.key!r} is given twice in this call; keys are unique "
                "in a batch.",
            )
        seen.add(item.key)
        for number, ref in enumerate(item.images):
            where = f"items[{index}].images[{number}]"
            if ref.part is not None and not multipart:
                raise ApiError(
                    "invalid_request",
                    f"{where}.part refers to a multipart image part: this body is JSON. Give "
                    "data (base64), url or sha256, or send multipart/form-data.",
                )
            if ref.part is not None and ref.part >= len(raw.parts):
                raise ApiError(
                    "invalid_request",
                    f"{where}.part is {ref.part}, but the body has {len(raw.parts)} image "
                    "parts (numbered from 0).",
                )
            if ref.data is not None and multipart:
                raise ApiError(
                    "invalid_request",
                    f"{where}.data: base64 images go in JSON bodies; in multipart, send the "
                    "image as an `image` part and give its index as part.",
                )


def key_is_valid(key: str) -> bool:
    """A key without control characters that UTF-8 can encode (no lone surrogates)."""
    return text_problem(key) is None


def _parse_items(body: bytes | str) -> list[BatchItemIn]:
    try:
        return ItemsAdd.model_validate_json(body).items
    except ValidationError as exc:
        raise ApiError("invalid_request", describe(exc)) from exc


async def _read_multipart(request: Request, settings: Settings) -> RawItems:
    max_files = settings.batch_max_items_per_add * settings.max_images_per_job
    form = await read_form(
        request,
        settings,
        max_files=max_files,
        max_fields=10,
        max_part_size=MAX_ITEMS_FIELD_BYTES,
        too_many_files=ApiError(
            "too_many_items",
            f"More than {max_files} image parts: at most VISIONQ_BATCH_MAX_ITEMS_PER_ADD "
            "items of VISIONQ_MAX_IMAGES_PER_JOB images per call. Send fewer per call.",
        ),
        field_too_large=lambda _: ApiError(
            "payload_too_large",
            f"The items field is over {MAX_ITEMS_FIELD_BYTES:,} bytes: send fewer items per call.",
        ),
    )
    try:
        unknown = sorted(set(form.keys()) - FORM_FIELDS)
        if unknown:
            raise ApiError(
                "invalid_request",
                f"Unknown form fields {unknown}; expected 'items' (JSON) and 'image' files.",
            )
        texts = form.getlist("items")
        if len(texts) != 1 or not isinstance(texts[0], str):
            raise ApiError(
                "invalid_request",
                "Give the items as one text field 'items' holding "
                '{"items": [{"key": ..., "images": [{"part": 0}]}]}.',
            )
        items = _parse_items(texts[0])
        parts = []
        for index, part in enumerate(form.getlist("image")):
            if not isinstance(part, UploadFile):
                raise ApiError("invalid_request", f"Form field image #{index + 1} must be a file.")
            data = await part.read(settings.max_image_bytes + 1)
            too_big = len(data) > settings.max_image_bytes
            size = (part.size or len(data)) if too_big else len(data)
            parts.append(ImagePart(None if too_big else data, part.filename, size))
        return RawItems(items=items, parts=parts)
    finally:
        await form.close()
