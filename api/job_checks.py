"""Validate a job request's fields and images: every check a submit (or an estimate) makes
before anything is stored, each failure an ApiError with its specific 4xx code."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from visionq.api.errors import ApiError
from visionq.api.rawjob import RawJob, describe, too_large
from visionq.api.tiers import (
    check_deadline,
    check_lane_on,
    check_priced,
    deadline_seconds,
    requested_tier,
)
from visionq.models.settings import Settings
from visionq.vision.catalogue import Catalogue
from visionq.vision.formats import ImageRejectedError
from visionq.vision.memory import MemoryBusyError, process_limits, too_much_memory_error
from visionq.vision.model_fit import check_options, choose_model
from visionq.vision.prepare import PreparedImage, downscale_memory, prepare_image
from visionq.vision.structured import MAX_SCHEMA_CHARS, InvalidSchemaError, check_schema
from visionq.vision.tasks import JobOptions, JobSpecError, TaskKind, validate_job
from visionq.vision.tiers import Tier

_MODEL_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}$")
# JSON containers nested deeper than this in a schema are refused: jsonschema checks a
# schema recursively, and ~120 levels exhaust Python's recursion limit.
MAX_SCHEMA_DEPTH = 64
MAX_LABEL_CHARS = 200


@dataclass(frozen=True)
class AdmittedFields:
    """A job's validated fields, images apart (the same for every item of a batch that
    asks the same thing: admitted once, see api/batch_intake.py)."""

    task: TaskKind
    prompt: str | None
    model: str
    labels: list[str] | None
    options: JobOptions
    schema: dict[str, Any] | None
    # What to know about a job that runs anyway (a deprecated model, an alias resolved).
    warnings: list[dict[str, str]] = field(default_factory=list)
    # The tier asked for (options.tier or VISIONQ_TIER_DEFAULT; maybe auto) and the
    # seconds from submission to the job's deadline (options.deadline_s or the tier's).
    tier: Tier = Tier.STANDARD
    deadline_s: float | None = None


@dataclass(frozen=True)
class AdmittedJob:
    task: TaskKind
    prompt: str | None
    model: str
    labels: list[str] | None
    options: JobOptions
    schema: dict[str, Any] | None
    # Upright, decodable, in a mode Gemini takes: what is stored and sent.
    images: list[PreparedImage]
    # What to know about a job that runs anyway (a deprecated model, an alias resolved).
    warnings: list[dict[str, str]] = field(default_factory=list)
    tier: Tier = Tier.STANDARD
    deadline_s: float | None = None

    @property
    def fields(self) -> AdmittedFields:
        """The job's fields without its images."""
        return AdmittedFields(
            task=self.task, prompt=self.prompt, model=self.model, labels=self.labels,
            options=self.options, schema=self.schema, warnings=self.warnings,
            tier=self.tier, deadline_s=self.deadline_s,
        )  # fmt: skip


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
            raise ApiError("invalid_text", "Text fields must not contain NUL characters.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ApiError("invalid_text", f"Text fields must be valid Unicode: {exc}.") from exc


def admit(raw: RawJob, settings: Settings, catalogue: Catalogue) -> AdmittedJob:
    """Validate every field and every image; raise ApiError naming the first problem.

    The model is checked against the catalogue: retired and unknown ids, and options the
    model does not take, are refused here rather than by Google after the job waited.
    """
    fields = admit_fields(raw, len(raw.images), settings, catalogue)
    images = [
        admit_image(data, raw.image_label(index), settings) for index, data in enumerate(raw.images)
    ]
    if fields.options.max_side:
        for index, image in enumerate(images):
            check_downscale(image.data, fields.options.max_side, settings, raw.image_label(index))
    return AdmittedJob(
        task=fields.task,
        prompt=fields.prompt,
        model=fields.model,
        labels=fields.labels,
        options=fields.options,
        schema=fields.schema,
        images=images,
        warnings=fields.warnings,
        tier=fields.tier,
        deadline_s=fields.deadline_s,
    )


def admit_fields(
    raw: RawJob, images: int, settings: Settings, catalogue: Catalogue
) -> AdmittedFields:
    """Validate every field of a job of ``images`` images (``raw.images`` is not read);
    raise ApiError naming the first problem. The checks ``admit`` makes before the images."""
    _no_nul(raw)
    if raw.labels and any(len(label) > MAX_LABEL_CHARS for label in raw.labels):
        raise ApiError(
            "label_too_long", f"Each label may have at most {MAX_LABEL_CHARS} characters."
        )
    task = _task(raw.task)
    requested = _model_name(raw.model)
    try:
        options = JobOptions.model_validate(raw.options)
    except ValidationError as exc:
        raise ApiError("invalid_options", f"options: {describe(exc)}") from exc
    if images > settings.max_images_per_job:
        raise ApiError(
            "too_many_images",
            f"{images} images; at most {settings.max_images_per_job} per job.",
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
            images=images,
            schema=schema,
            options=options,
        )
        choice = choose_model(
            catalogue, requested, task, configured_default=settings.default_model or None,
            allow_unknown=settings.allow_unknown_models,
        )  # fmt: skip
        warnings = [*choice.warnings, *check_options(task, options, choice, images=images)]
    except JobSpecError as exc:
        raise ApiError.of(exc) from exc
    except InvalidSchemaError as exc:
        raise ApiError("invalid_schema", f"schema: {exc}") from exc
    check_priced(options, choice.model, settings, catalogue)
    check_lane_on(options, settings)
    check_deadline(options, settings)
    return AdmittedFields(
        task=task,
        prompt=raw.prompt.strip() if raw.prompt and raw.prompt.strip() else None,
        model=choice.model,
        labels=labels,
        options=options,
        schema=schema,
        warnings=[warning.as_dict() for warning in warnings],
        tier=requested_tier(options, settings),
        deadline_s=deadline_seconds(options, settings),
    )


def _check_schema_shape(schema: object) -> None:
    """Refuse what JSON Schema validation cannot be trusted with: non-finite numbers (not
    JSON: the database and Gemini refuse them), deep nesting, and a schema over the size
    limit."""
    stack: list[tuple[object, int]] = [(schema, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ApiError("invalid_schema", "schema: numbers must be finite, not NaN or ±∞.")
        if isinstance(item, dict | list):
            if depth > MAX_SCHEMA_DEPTH:
                raise ApiError(
                    "invalid_schema",
                    f"schema: nested more than {MAX_SCHEMA_DEPTH} levels deep.",
                )
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    size = len(json.dumps(schema))
    if size > MAX_SCHEMA_CHARS:
        raise ApiError(
            "schema_too_large",
            f"The schema is {size:,} characters as JSON; at most {MAX_SCHEMA_CHARS:,}.",
        )


def _task(value: str | None) -> TaskKind:
    choices = ", ".join(kind.value for kind in TaskKind)
    if not value:
        raise ApiError("missing_task", f"Give a task: one of {choices}.")
    try:
        return TaskKind(value.strip().lower())
    except ValueError as exc:
        raise ApiError("unknown_task", f"Unknown task {value!r}; use one of {choices}.") from exc


def _model_name(value: str | None) -> str | None:
    """The model the request names (``models/`` dropped); None for the default."""
    model = (value or "").strip().removeprefix("models/")
    if not model:
        return None
    if not _MODEL_NAME.match(model):
        raise ApiError("invalid_model", f"{model!r} is not a Gemini model name.")
    return model


def admit_image(data: bytes, label: str, settings: Settings) -> PreparedImage:
    """The prepared image; ApiError naming it by ``label`` (its file name or URL, else
    "Image #N": see RawJob.image_label)."""
    if len(data) > settings.max_image_bytes:
        raise too_large(label[0].lower() + label[1:], len(data), settings.max_image_bytes)
    if not data:
        raise ApiError("empty_image", f"{label} is empty.")
    # One decode budget for the whole process: parallel submits share it.
    limits = process_limits(
        settings.image_decode_max_bytes,
        settings.image_decode_budget_bytes,
        settings.image_decode_wait_s,
    )
    try:
        prepared = prepare_image(data, max_pixels=settings.max_image_pixels, limits=limits)
    except ImageRejectedError as exc:
        raise ApiError.of(exc, f"{label}: {exc.message}") from exc
    except MemoryBusyError as exc:
        raise ApiError(
            "unavailable",
            f"{label}: {exc}.",
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from exc
    return prepared


def check_downscale(data: bytes, max_side: int, settings: Settings, label: str) -> None:
    """413 for an image the worker could not downscale to ``max_side`` within the per-image
    memory bound (a PNG passes its check row by row, but shrinking it decodes it whole):
    refused now, not failed after the job waited in the queue. ``label`` names the image."""
    limit = settings.image_decode_max_bytes
    found = downscale_memory(data, max_side)
    if found is not None and found[2] > limit:
        width, height, needed = found
        error = too_much_memory_error(width, height, needed, limit, "downscaling it")
        raise ApiError.of(error, f"{label}: {error.message}")
