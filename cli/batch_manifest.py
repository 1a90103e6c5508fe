"""A `visionq batch run` manifest (.jsonl or .csv): each line validated into a ManifestItem.

JSON Lines: one JSON object a line, with any of the fields of ManifestItem. CSV: the first
line names the columns (CSV_COLUMNS, image needed); an empty cell is a field not given,
labels are comma-separated and options a JSON object. A bad line's problem is added to the
caller's ``errors`` as ``file:line: problem`` and the line left out, so that every mistake
of a manifest is shown at once, before anything is sent.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from visionq.vision.tasks import JobOptions

# The columns a CSV manifest may have: every field but images and schema (no lists or
# objects in a cell, but for options, which is JSON).
CSV_COLUMNS = ("key", "image", "prompt", "labels", "model", "options")
# Validation context of a CSV line: its options cell is JSON text.
_CSV = {"csv": True}

ImageText = Annotated[str, Field(min_length=1)]
# A manifest line read: its number, its fields (not validated yet), its validation context.
_Line = tuple[int, object, dict[str, bool] | None]


class ManifestProblem(ValueError):
    """What is wrong with a line, said whole (shown as is after ``file:line:``)."""


class ManifestItem(BaseModel):
    """One manifest line: an item's images (``image`` or ``images``, paths relative to the
    manifest's folder or http(s) URLs), its key and the fields that replace the batch's
    defaults for it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    image: ImageText | None = None
    images: Annotated[list[ImageText], Field(min_length=1)] | None = None
    key: str | None = None
    prompt: str | None = None
    labels: list[str] | None = None
    model: str | None = None
    options: dict[str, Any] | None = None
    # "schema" would shadow BaseModel.schema: the field keeps its name on the wire only.
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")

    @field_validator("*", mode="before")
    @classmethod
    def _given_not_null(cls, value: Any) -> Any:
        # A field written as null is a mistake (leave it out instead), not "not given".
        if value is None:
            raise PydanticCustomError("null", "null")
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [label.strip() for label in value.split(",") if label.strip()]
        return value

    @field_validator("options", mode="before")
    @classmethod
    def _options_text(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and info.context == _CSV:
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ManifestProblem(f"options is not JSON ({exc})") from exc
        return value

    @field_validator("options")
    @classmethod
    def _known_options(cls, options: dict[str, Any] | None) -> dict[str, Any] | None:
        unknown = sorted(set(options or {}) - set(JobOptions.model_fields))
        if unknown:
            known = ", ".join(JobOptions.model_fields)
            raise ManifestProblem(f"unknown option {', '.join(unknown)}; known: {known}")
        return options

    @model_validator(mode="after")
    def _one_of_image_images(self) -> ManifestItem:
        if (self.image is None) == (self.images is None):
            raise ManifestProblem('give "image" (one path or URL) or "images" (a list), not both')
        return self

    def written_images(self) -> list[str]:
        """The item's images as written in the manifest (one or more)."""
        return [self.image] if self.image is not None else list(self.images or ())

    def overrides(self) -> dict[str, Any]:
        """The fields replacing the batch's defaults for this item, as the API names them."""
        return self.model_dump(
            include={"prompt", "labels", "model", "options", "json_schema"},
            exclude_none=True,
            by_alias=True,
        )


# What a field of the wrong type (or null) is told, by field.
_FIELD_PROBLEMS = {
    "image": "an image is a path or an http(s) URL (a non-empty string)",
    "images": "images must be a non-empty list of paths or URLs",
    "key": "key must be a string",
    "prompt": "prompt must be a string",
    "model": "model must be a string",
    "labels": "labels must be a list of strings or one comma-separated string",
    "options": "options must be a JSON object, not {kind}",
    "schema": "schema must be a JSON object, not {kind}",
}
# The fields of a manifest item, as written (a JSON Lines item may have them all).
FIELDS = tuple(sorted(_FIELD_PROBLEMS))


def manifest_items(path: Path, errors: list[str]) -> Iterator[tuple[str, ManifestItem]]:
    """The valid lines of a .jsonl or .csv manifest, each with its origin (``file:line``);
    a bad line (or an unreadable file) adds its problem to ``errors``."""
    reader = _jsonl_lines if path.suffix.lower() == ".jsonl" else _csv_lines
    try:
        for line, row, context in reader(path, errors):
            origin = f"{path}:{line}"
            try:
                yield origin, ManifestItem.model_validate(row, context=context)
            except ValidationError as exc:
                errors.append(f"{origin}: {_problem(exc)}")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})")


def _jsonl_lines(path: Path, errors: list[str]) -> Iterator[_Line]:
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError as exc:
                errors.append(f"{path}:{number}: not a JSON object ({exc})")
                continue
            if not isinstance(row, dict):
                errors.append(f"{path}:{number}: a line is a JSON object, not {kind(row)}")
                continue
            yield number, row, None


def _csv_lines(path: Path, errors: list[str]) -> Iterator[_Line]:
    # utf-8-sig: a spreadsheet's CSV export often starts with a byte-order mark.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        unknown = [column for column in columns if column not in CSV_COLUMNS]
        if "image" not in columns or unknown:
            problem = f"unknown columns {', '.join(unknown)}; " if unknown else ""
            errors.append(
                f"{path}:1: {problem}the first line names the columns, among "
                f"{','.join(CSV_COLUMNS)} (image is needed)"
            )
            return
        start = reader.line_num + 1
        for row in reader:
            if None in row:
                errors.append(f"{path}:{start}: more cells than columns")
            else:
                # An empty cell is a field not given.
                yield start, {name: cell for name, cell in row.items() if cell}, _CSV
            start = reader.line_num + 1


def _problem(exc: ValidationError) -> str:
    """A line's validation errors as one sentence: its unknown fields, else its first
    problem (a mistake at a time, as a user fixes them)."""
    details = exc.errors(include_url=False)
    unknown = sorted(
        str(error["loc"][0]) for error in details if error["type"] == "extra_forbidden"
    )
    if unknown:
        return f"unknown field {', '.join(unknown)}; an item has {', '.join(FIELDS)}"
    return _said(details[0])


def _said(error: ErrorDetails) -> str:
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, ManifestProblem):
        return str(cause)
    field = str(error["loc"][0]) if error["loc"] else ""
    if field == "images" and len(error["loc"]) > 1:  # one of the list's images
        field = "image"
    if field in _FIELD_PROBLEMS:
        return _FIELD_PROBLEMS[field].format(kind=kind(error["input"]))
    return error["msg"]


def kind(value: object) -> str:
    """What a JSON value is, in words ("a list", "null")."""
    return {list: "a list", str: "a string", dict: "an object", type(None): "null"}.get(
        type(value), type(value).__name__
    )
