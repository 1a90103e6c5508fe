"""A job's request body as the client sends it: multipart for files and bytes, JSON when an
image is a URL (the API fetches it), and sequence arguments checked so that a bare string
is never taken one character at a time."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# A path (str or Path), an http(s) URL (str), or the image's bytes.
ImageSource = str | Path | bytes
_URL_PREFIXES = ("http://", "https://")


def is_url(image: ImageSource) -> bool:
    """True for an http(s) URL given as a str (a Path is always a file)."""
    return isinstance(image, str) and image.lower().startswith(_URL_PREFIXES)


def image_list(images: ImageSource | Sequence[ImageSource]) -> list[ImageSource]:
    """``images`` as a list: one path, URL or bytes alone is one image (not its characters)."""
    if isinstance(images, str | Path | bytes):
        return [images]
    found = list(images)
    for image in found:
        if not isinstance(image, str | Path | bytes):
            raise TypeError(
                f"an image must be a path, an http(s) URL or bytes, not {type(image).__name__}"
            )
    return found


def text_list(name: str, values: str | Sequence[str] | None) -> list[str] | None:
    """A list of strings from a list, or from one comma-separated string ("cat,dog")."""
    if values is None:
        return None
    if isinstance(values, str):
        return [part.strip() for part in values.split(",") if part.strip()]
    found = list(values)
    for value in found:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be strings, not {type(value).__name__}")
    return found


def _image_bytes(image: str | Path | bytes) -> bytes:
    return image if isinstance(image, bytes) else Path(image).read_bytes()


def part_names(images: Sequence[ImageSource]) -> list[str]:
    """The file name each image is sent under in a multipart request, unique in it.

    The API names an image by this name in its errors ("Image 'photo.jpg': ..."); the server
    reads the format from the bytes, so the name is only for people. Bytes are
    ``image-1``, ``image-2``... (counted from 1, as people count); a path is its base name.
    When two names would be the same (``a/photo.jpg``, ``b/photo.jpg``), every name gets its
    image's number in front (``1-photo.jpg``, ``2-photo.jpg``), so an error names one file.
    """
    names = [
        f"image-{number}" if isinstance(image, bytes) else Path(image).name
        for number, image in enumerate(images, start=1)
    ]
    if len(set(names)) < len(names):
        names = [f"{number}-{name}" for number, name in enumerate(names, start=1)]
    return names


def job_request(
    images: list[ImageSource],
    *,
    task: str,
    prompt: str | None,
    labels: list[str] | None,
    model: str | None,
    options: dict[str, Any] | None,
    schema: dict[str, Any] | None,
) -> dict[str, Any]:
    """The keyword arguments of an httpx request carrying this job: ``json`` when any image
    is a URL, else ``data`` and ``files`` (multipart, no base64 inflation)."""
    fields: dict[str, Any] = {"task": task}
    for key, value in (("prompt", prompt), ("model", model), ("schema", schema)):
        if value is not None:
            fields[key] = value
    if labels:
        fields["labels"] = labels
    if options:
        fields["options"] = options
    if any(is_url(image) for image in images):
        fields["images"] = [
            {"url": image}
            if is_url(image)
            else {"data": base64.b64encode(_image_bytes(image)).decode()}
            for image in images
        ]
        return {"json": fields}
    data = {
        key: json.dumps(value) if key in ("labels", "options", "schema") else value
        for key, value in fields.items()
    }
    files = [
        ("image", (name, _image_bytes(image), "application/octet-stream"))
        for name, image in zip(part_names(images), images, strict=True)
    ]
    return {"data": data, "files": files}


def tier_options(
    options: dict[str, Any] | None, tier: str | None, deadline_s: int | None
) -> dict[str, Any] | None:
    """``options`` with ``tier`` and ``deadline_s`` (the submit's own arguments) set in it;
    a key set both ways to different values is refused (ValueError)."""
    extra = {key: value for key, value in (("tier", tier), ("deadline_s", deadline_s))
             if value is not None}  # fmt: skip
    if not extra:
        return options
    merged = dict(options or {})
    for key, value in extra.items():
        if key in merged and merged[key] != value:
            raise ValueError(
                f"{key} is given twice ({key}={value!r} and options[{key!r}]="
                f"{merged[key]!r}); pass it once"
            )
        merged[key] = value
    return merged
