"""The files a command sends, checked before anything is sent, and grouped into jobs."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from visionq.client.inputs import part_names
from visionq.vision.formats import ImageRejectedError, require_supported
from visionq.vision.task_registry import TASKS
from visionq.vision.tasks import TaskKind

# Enough bytes for every format's signature and for Pillow to name a refused format.
_HEAD_BYTES = 64 * 1024


class InputError(ValueError):
    """One or more input files cannot be sent; the message names each and why."""


def _unreadable(path: Path) -> str | None:
    """Why ``path`` is no file we can read, if it is not."""
    if path.is_dir():
        return "is a directory; give image files"
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "not a regular file"
    return None


def image_problem(path: Path) -> str | None:
    """Why ``path`` cannot be sent as an image (None if it can), as ``path: reason``.

    The format is checked from the bytes with the function the API itself uses
    (``vision.formats.require_supported``), so the two never disagree on what is taken.
    """
    problem = _unreadable(path)
    if problem is None:
        try:
            with path.open("rb") as handle:
                head = handle.read(_HEAD_BYTES)
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror or exc}); check its permissions"
        else:
            try:
                if not head:
                    problem = "is empty"
                else:
                    require_supported(head)
            except ImageRejectedError as exc:
                problem = exc.message
    return f"{path}: {problem}" if problem is not None else None


def check_images(paths: list[Path]) -> None:
    """Raise InputError naming every file that cannot be sent (all of them, not the first)."""
    problems = [problem for path in paths if (problem := image_problem(path)) is not None]
    if problems:
        raise InputError("; ".join(problem.rstrip(".") for problem in problems))


def read_schema(path: Path) -> dict[str, Any]:
    """The JSON Schema in ``path``; InputError naming the file when it is not one."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a JSON file ({exc})") from exc
    if not isinstance(value, dict):
        raise InputError(f"{path}: a JSON Schema is a JSON object, not {type(value).__name__}")
    return value


def job_groups(images: list[Path], task: TaskKind) -> list[list[Path]]:
    """One job per image, or one job for all images where the task takes several."""
    return [images] if TASKS[task].multi_image else [[path] for path in images]


def label_list(labels: str | None) -> list[str] | None:
    """``--labels "a, b"`` as ["a", "b"]."""
    return [part.strip() for part in labels.split(",")] if labels else None


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def group_name(group: list[Path]) -> str:
    """How people see a job's images: ``a.png``, ``a.png, b.png``."""
    return ", ".join(path.name for path in group)


def group_stem(group: list[Path], task: str) -> str:
    """A file name stem for a job's outputs: ``a``, ``a.b.compare``, ``a+3-more``."""
    stems = [path.stem for path in group]
    if len(stems) == 1:
        return stems[0]
    if len(stems) == 2:
        return f"{stems[0]}.{stems[1]}.{task}"
    return f"{stems[0]}+{len(stems) - 1}-more.{task}"


_IMAGE_NUMBER = re.compile(r"\b[Ii]mage #(\d+)")


def name_files(message: str, group: list[Path]) -> str:
    """An API error about a job's images with "Image #N" (or the file name the API saw)
    replaced by the file's path.

    A message that names no image number is prefixed with the job's file names.
    """

    def file_of(match: re.Match[str]) -> str:
        number = int(match.group(1))
        return str(group[number - 1]) if 1 <= number <= len(group) else match.group(0)

    # The API names an uploaded file by the name the client sent it under (unique within
    # the request, see client.inputs.part_names): show the path that name stands for.
    for path, sent_as in zip(group, part_names(group), strict=True):
        prefix = f"Image {sent_as!r}: "
        if message.startswith(prefix):
            return f"{path}: {message.removeprefix(prefix)}"
    named, count = _IMAGE_NUMBER.subn(file_of, message)
    return named if count else f"{', '.join(str(path) for path in group)}: {message}"
