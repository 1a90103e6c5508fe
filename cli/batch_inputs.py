"""What `visionq batch run` sends: files, folders (walked recursively) and manifests, as
items with a key each, streamed so that a folder of 100,000 images is never held at once.

Two passes over the same PATHs: ``BatchInputs.count()`` walks them once to count the items
and to check every manifest line (a mistake in line 9,000 stops the run before anything is
sent, as `visionq submit` checks every file first); iterating yields the items again, one
at a time. Whether a file is an image is decided later, from its bytes, by the upload
pipeline (cli/batch_run.py), which lists the others as skipped. A manifest's lines are read
and validated by cli/batch_manifest.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionq.cli.batch_manifest import ManifestItem, manifest_items
from visionq.cli.inputs import InputError
from visionq.client.inputs import is_url
from visionq.vision.batch_keys import MAX_ITEM_KEY_BYTES
from visionq.vision.formats import sniff_source_type
from visionq.vision.task_registry import TASKS, TaskSpec
from visionq.vision.tasks import TaskKind

MANIFEST_SUFFIXES = (".jsonl", ".csv")
# Bytes read per file by count() to tell images from other files (a format's signature, a
# HEIF 'ftyp' box with its brands, sit in the first few dozen).
SNIFF_BYTES = 512
# Manifest errors shown before "... and N more": enough to see the pattern of a mistake.
MAX_ERRORS_SHOWN = 20
# Manifest lines named when they lack a field the task needs, before "and N more".
MAX_LACKING_SHOWN = 5


@dataclass(frozen=True)
class Need:
    """A field an item cannot run without (its task's TaskSpec says so), given to every item
    by ``option`` or per item by a manifest's ``field``."""

    field: str
    option: str
    holds: str


def needs(spec: TaskSpec) -> list[Need]:
    """What the task cannot run without, as its TaskSpec declares it: a prompt
    (``prompt_needs``), labels (``takes_labels``: the API wants two or more)."""
    found = []
    if spec.prompt_needs is not None:
        found.append(Need("prompt", "--prompt", spec.prompt_needs))
    if spec.takes_labels:
        found.append(Need("labels", "--labels", "two or more, comma-separated"))
    return found


class MissingFields(InputError):
    """A field the task needs that neither the run's options nor every item give: the API
    would reject every such item, after the batch is made under the run's defaults (and a
    run with the option added could no longer use that name). ``options``: what to add."""

    def __init__(self, task: TaskKind, missing: Sequence[Need], where: str) -> None:
        self.options = "/".join(need.option for need in missing)
        wanted = " and ".join(f"{need.option} ({need.holds})" for need in missing)
        fields = " and ".join(need.field for need in missing)
        super().__init__(
            f"--task {task.value} needs {wanted}, or a manifest giving {fields} on every line: "
            f"{where}"
        )


@dataclass(frozen=True)
class Source:
    """One item to add: its key, its images (local paths, or http(s) URLs the API fetches)
    and, from a manifest, the fields that replace the batch's defaults for it."""

    key: str
    images: tuple[Path | str, ...]
    overrides: dict[str, Any] = field(default_factory=dict)
    # A manifest item's line ("manifest.jsonl:12"), for messages; "" for a file.
    origin: str = ""


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot name an item (the API refuses the whole call for it), if it cannot."""
    if not key:
        return "the key is empty"
    if any(ord(char) < 32 or ord(char) == 127 for char in key):
        return "the key holds control characters (a newline, a tab...)"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # a file name whose bytes are not UTF-8
        return "the key is not valid UTF-8 text; rename the file"
    if size > MAX_ITEM_KEY_BYTES:
        return (
            f"the key is {size:,} bytes of UTF-8, over the {MAX_ITEM_KEY_BYTES:,} an item key may "
            "have; shorten the path (or give the manifest item a shorter key)"
        )
    return None


def default_name(
    paths: Sequence[Path],
    *,
    task: str,
    prompt: str | None,
    labels: list[str] | None,
    model: str | None,
    options: dict[str, Any],
    schema: dict[str, Any] | None,
    priority: int | None = None,
) -> str:
    """The batch name a run gets without --name: ``<first PATH's name>-<task>-<8 hex>``.

    The hex digits hash the absolute PATHs and the batch's defaults, so the same command
    run again (to resume) finds the same batch, and another command makes another one.
    """
    absolute = [os.path.abspath(path) for path in paths]
    # A priority only when given: runs without --priority keep the names they had.
    given = [] if priority is None else [priority]
    digest = hashlib.sha256(
        json.dumps(
            [absolute, task, prompt, labels, model, options, schema, *given],
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
    ).hexdigest()[:8]
    stem = "".join(char for char in Path(absolute[0]).name if char.isprintable())[:100]
    return f"{stem or 'batch'}-{task}-{digest}"


class BatchInputs:
    """The items of PATHs: each file, each file under each folder, each manifest line.

    Keys: a file's POSIX path relative to the common parent of the PATHs (one folder: to
    the folder itself), so that the same command gives the same keys wherever it is run
    from; a manifest item's ``key``, or its image as written. Folders are walked in name
    order without following symlinked folders; dot-folders (.git, .cache) are left out.
    A file reached twice (a folder inside another given folder) is one item.
    """

    def __init__(
        self, paths: Sequence[Path], task: TaskKind, *, defaults: Mapping[str, Any] | None = None
    ) -> None:
        """``defaults``: the item fields the run's options give every item, by field name."""
        if not paths:
            raise InputError("give at least one file, folder or manifest")
        self.paths = list(paths)
        self.not_images = 0  # known after count()
        self.task = task
        self.spec = TASKS[task]
        # What each item must then give itself (only a manifest line can).
        given = defaults or {}
        self.missing = [need for need in needs(self.spec) if not _gives(given.get(need.field))]
        for path in self.paths:
            if not path.exists():
                raise InputError(f"{path}: no such file or folder")
            if not (path.is_dir() or path.is_file()):
                raise InputError(f"{path}: not a regular file or folder")
        parents = [
            os.path.abspath(path) if path.is_dir() else os.path.dirname(os.path.abspath(path))
            for path in self.paths
            if not is_manifest(path)
        ]
        self.base = os.path.commonpath(parents) if parents else os.getcwd()
        if parents and self.spec.min_images > 1:
            raise InputError(
                f"task {task.value} takes {self.spec.min_images} or more images per item: a "
                "file is one image, so list each item's images in a manifest (.jsonl, "
                '"images": [...])'
            )
        if parents and self.missing:
            raise MissingFields(task, self.missing, "a file or folder gives none")

    def count(self) -> int:
        """The number of items, after checking every manifest line (InputError naming each
        bad line, by file and number, if any is wrong); ``not_images`` is then how many of
        them will be skipped when sent: a local file whose first bytes are no image, or a
        file whose key the API would refuse."""
        errors: list[str] = []
        # The manifest lines that lack a field of self.missing: the first few, and how many.
        lacking: list[str] = []
        lacks = 0
        total = 0
        self.not_images = 0
        for source in self._items(errors):
            total += 1
            if key_problem(source.key) or not all(map(looks_like_image, source.images)):
                self.not_images += 1
            if not all(_gives(source.overrides.get(need.field)) for need in self.missing):
                lacks += 1
                if len(lacking) < MAX_LACKING_SHOWN:
                    lacking.append(source.origin)
        if errors:
            shown = errors[:MAX_ERRORS_SHOWN]
            more = len(errors) - len(shown)
            raise InputError("; ".join(shown) + (f"; and {more} more" if more else ""))
        if lacks:
            others = f" and {lacks - len(lacking):,} more" if lacks > len(lacking) else ""
            verb = "gives" if lacks == 1 else "give"
            where = f"{', '.join(lacking)}{others} {verb} none"
            raise MissingFields(self.task, self.missing, where)
        return total

    def __iter__(self) -> Iterator[Source]:
        errors: list[str] = []
        for source in self._items(errors):
            if errors:  # a manifest changed since count() checked it
                break
            yield source
        if errors:
            raise InputError(f"{errors[0]} (the manifest changed during the run)")

    def _items(self, errors: list[str]) -> Iterator[Source]:
        # key -> whether a file of a folder (not a manifest line) gave it: the same key from
        # two folders is the same file (a key is the file's path below the common parent).
        # About 150 bytes a key (15 MB at 100,000): one folder, the usual run, needs none,
        # since a walk yields each file once under its own relative path.
        seen: dict[str, bool] = {}
        track = len(self.paths) > 1 or is_manifest(self.paths[0])
        for path in self.paths:
            manifest = is_manifest(path)
            if manifest:
                items = read_manifest(path, errors, self.spec.min_images, self.spec.max_images)
            else:
                items = self._files(path)
            for source in items:
                if source.key in seen:
                    if not manifest and seen[source.key]:
                        continue  # the same file reached twice: one item
                    where = source.origin or str(source.images[0])
                    errors.append(f"{where}: the key {source.key!r} is given twice")
                    continue
                if track:
                    seen[source.key] = not manifest
                yield source

    def _files(self, path: Path) -> Iterator[Source]:
        if path.is_file():
            yield self._file_source(os.path.abspath(path))
            return
        for file in walk(os.path.abspath(path)):
            yield self._file_source(file)

    def _file_source(self, absolute: str) -> Source:
        key = Path(os.path.relpath(absolute, self.base)).as_posix()
        return Source(key=key, images=(Path(absolute),))


def _gives(value: object) -> bool:
    """Whether an item's field gives something (not a blank prompt, nor no labels)."""
    return bool(value.strip() if isinstance(value, str) else value)


def looks_like_image(image: Path | str) -> bool:
    """Whether ``image`` is a URL (the API fetches it) or a file whose first bytes name an
    image format the API takes. Only a head is read: the count's pass over 100,000 files
    stays cheap; the upload checks each file whole again."""
    if isinstance(image, str):
        return True
    try:
        with image.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return False
    return sniff_source_type(head) is not None


def is_manifest(path: Path) -> bool:
    """A PATH given on the command line is a manifest when it is a .jsonl or .csv file."""
    return path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file()


def walk(folder: str) -> Iterator[str]:
    """Every regular file under ``folder`` (absolute paths), in name order (a sub-folder's
    files where its name falls), depth first; symlinked folders are not followed and
    dot-folders are left out. Only the folders on the current path are listed at once."""
    stack = [iter(_entries(folder))]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
        elif entry.is_dir(follow_symlinks=False):
            if not entry.name.startswith("."):
                stack.append(iter(_entries(entry.path)))
        elif entry.is_file():
            yield entry.path


def _entries(folder: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as scan:
            return sorted(scan, key=lambda entry: entry.name)
    except OSError as exc:
        raise InputError(
            f"{folder}: cannot be listed ({exc.strerror or exc}); check its permissions"
        ) from exc


def read_manifest(
    path: Path, errors: list[str], min_images: int, max_images: int | None
) -> Iterator[Source]:
    """The items of a .jsonl or .csv manifest; a bad line adds its error to ``errors``."""
    for origin, item in manifest_items(path, errors):
        try:
            yield _manifest_source(item, path.parent, origin, min_images, max_images)
        except ValueError as exc:
            errors.append(f"{origin}: {exc}")


def _manifest_source(
    item: ManifestItem, folder: Path, origin: str, min_images: int, max_images: int | None
) -> Source:
    """A valid manifest line as a Source, if the task takes as many images as it has, its
    local images exist and its key can name an item; ValueError saying what is wrong."""
    written = item.written_images()
    if not min_images <= len(written) <= (max_images or len(written)):
        wanted = f"{min_images}" if min_images == max_images else f"at least {min_images}"
        if max_images not in (None, min_images):
            wanted = f"{min_images} to {max_images}"
        raise ValueError(f"{len(written)} image(s) for a task that takes {wanted}")
    images = tuple(_image(text, folder) for text in written)
    key = item.key if item.key is not None else written[0] if len(written) == 1 else None
    if key is None:
        raise ValueError('give a "key" to an item of several images')
    problem = key_problem(key)
    if problem:
        raise ValueError(problem)
    return Source(key=key, images=images, overrides=item.overrides(), origin=origin)


def _image(text: str, folder: Path) -> Path | str:
    """A URL as given, or a local file (relative to the manifest's folder) that exists."""
    if is_url(text):
        return text
    path = Path(text).expanduser()
    path = path if path.is_absolute() else folder / path
    if not path.is_file():
        raise ValueError(f"{text}: no such file" if not path.exists() else f"{text}: not a file")
    return path
