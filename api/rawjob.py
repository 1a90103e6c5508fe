"""A job request's fields before validation, as the JSON and the multipart readers give them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from api.errors import ApiError


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


def too_large(what: str, size: int, limit: int) -> ApiError:
    """The 413 for a request or an image over its byte limit."""
    return ApiError(
        413, "payload_too_large", f"The {what} is {size:,} bytes; the limit is {limit:,} bytes."
    )


def describe(exc: ValidationError) -> str:
    """The first few problems of a pydantic validation error, as one message."""
    messages = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"])
        messages.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(messages)
