"""A job request's fields before validation, as the JSON and the multipart readers give them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from visionq.api.errors import ApiError
from visionq.vision.validation import problems


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
    # What each image is called in error messages: the multipart part's file name, or the
    # URL it was fetched from; None (or missing) for none: then "Image #N".
    image_names: list[str | None] = field(default_factory=list)
    # What was done to each image before this request (a retry's stored inputs, already
    # converted at their first submit): kept in front of the new job's inputs' changes.
    image_changes: list[list[str]] = field(default_factory=list)
    # Where the job's end event is also sent (checked by the SSRF rules at submit).
    webhook_url: str | None = None
    # 0..9 (9 first within the tenant); None: VISIONQ_DEFAULT_PRIORITY (api/priority.py).
    priority: int | None = None

    def image_label(self, index: int) -> str:
        """How errors name image ``index``: its file name or URL, else "Image #N"."""
        name = self.image_names[index] if index < len(self.image_names) else None
        return image_label(name, index)


# A name shown in an error is cut to this many characters (names come from clients).
_NAME_CHARS = 120


def image_label(name: str | None, index: int) -> str:
    """``name`` as errors show it (quoted, printable, at most 120 characters), else
    "Image #N" when the image has no name."""
    if not name or not name.strip():
        return f"Image #{index + 1}"
    printable = "".join(char if char.isprintable() else "?" for char in name.strip())
    if len(printable) > _NAME_CHARS:
        printable = printable[:_NAME_CHARS] + "..."
    return f"Image {printable!r}"


def too_large(what: str, size: int, limit: int) -> ApiError:
    """The 413 for a request or an image over its byte limit."""
    return ApiError(
        "payload_too_large", f"The {what} is {size:,} bytes; the limit is {limit:,} bytes."
    )


def describe(exc: ValidationError) -> str:
    """The first few problems of a pydantic validation error, as one message."""
    return "; ".join(f"{where}: {msg}" if where else msg for where, msg in problems(exc, limit=5))
