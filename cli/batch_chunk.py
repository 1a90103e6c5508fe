"""`visionq batch run`'s upload: chunks of items sent in parallel, nothing sent twice.

Each chunk (at most ``--chunk`` items and 32 MB of files) goes to a pool of ``--parallel``
threads; the main thread keeps at most that many chunks in flight (so memory stays flat
whatever the number of files), shows the progress and handles Ctrl-C. Per chunk, in
its thread:

1. on a batch that had items (a resumed run), ``lookup(keys)``: keys already in the batch
   are counted "already there", and their files are never read or sent;
2. the other files are checked from their bytes (a non-image is skipped, not sent) and
   hashed; ``lookup(sha256s)`` names the images the tenant already stored, which go
   as sha256 references, not bytes;
3. ``add_items``: one call, retried on transient errors (a key the server already added
   answers "exists", so a retry never makes a second job); while the API pushes back
   (429 too_many_active_jobs) the chunk waits and tries again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from visionq.cli.batch_files import Rejection
from visionq.cli.batch_inputs import Source, key_problem
from visionq.cli.batch_limit import CallLimit, in_pieces
from visionq.cli.inputs import image_problem
from visionq.client import VisionqClient, VisionqError
from visionq.client.batch_models import (
    ItemImage,
    ItemOutcome,
    ItemsAdded,
    NewItem,
    Sha256Ref,
)
from visionq.client.inputs import is_url

# The most file bytes in one add call: with --parallel chunks in flight, the CLI holds at
# most parallel x this in memory (the API takes up to 200 MB per request).
MAX_CHUNK_BYTES = 32 * 1024 * 1024
# How long the API's push-back may last (429 too_many_active_jobs) before a chunk gives up:
# the batch's own jobs are draining meanwhile, so this is generous.
PUSHBACK_LIMIT_S = 6 * 3600.0


class Stopped(Exception):
    """The run was interrupted before this chunk was sent (nothing of it was added)."""


@dataclass
class ChunkResult:
    """What one chunk came to: counts, plus the lines to show for rejected/skipped items."""

    created: int = 0
    existing: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    uploaded_images: int = 0
    referenced_images: int = 0


def chunks(
    sources: Iterable[Source], size: int | CallLimit, max_bytes: int
) -> Iterator[list[Source]]:
    """``sources`` in lists of at most ``size`` items (a CallLimit: its size when each list
    is built) and ``max_bytes`` of local files (a larger file goes alone)."""
    chunk: list[Source] = []
    weight = 0
    for source in sources:
        item_bytes = sum(_file_size(image) for image in source.images)
        most = size if isinstance(size, int) else size.size
        if chunk and (len(chunk) >= most or weight + item_bytes > max_bytes):
            yield chunk
            chunk, weight = [], 0
        chunk.append(source)
        weight += item_bytes
    if chunk:
        yield chunk


def _file_size(image: Path | str) -> int:
    if isinstance(image, str):
        return 0
    try:
        return image.stat().st_size
    except OSError:
        return 0  # found missing when the chunk is read: skipped then


def send_chunk(
    client: VisionqClient,
    batch_id: str,
    sources: list[Source],
    *,
    resumed: bool,
    stop: threading.Event,
    limit: CallLimit | None = None,
) -> ChunkResult:
    """Add one chunk of items to the batch (see the module docstring for the steps); each
    call carries at most ``limit.size`` items (keys, sha256s), lowered when the API says."""
    limit = limit or CallLimit(len(sources))
    result = ChunkResult()
    todo = _not_added(client, batch_id, sources, resumed, result, limit)
    items: list[NewItem] = []
    data_of: dict[str, bytes] = {}  # sha256 -> bytes, one object per distinct image
    for source in todo:
        images = _read_images(source, data_of, result)
        if images is not None:
            items.append(NewItem(source.key, images, source.overrides))
    if not items:
        return result
    stored = _stored(client, batch_id, list(data_of), limit)
    sent = [_with_refs(item, stored, data_of) for item in items]
    outcomes = _add(client, batch_id, sent, stop, limit)
    # An image the lookup found stored may be gone by the add (retention): send its bytes.
    again = {o.key for o in outcomes if o.error is not None and o.error.code == "image_not_stored"}
    if again:
        retry = [_with_refs(item, set(), data_of) for item in items if item.key in again]
        outcomes = [o for o in outcomes if o.key not in again]
        outcomes += _add(client, batch_id, retry, stop, limit)
        sent = [item for item in sent if item.key not in again] + retry
    inputs = {source.key: source.origin or str(source.images[0]) for source in sources}
    _tally(outcomes, sent, inputs, result)
    return result


def _not_added(
    client: VisionqClient,
    batch_id: str,
    sources: list[Source],
    resumed: bool,
    result: ChunkResult,
    limit: CallLimit,
) -> list[Source]:
    """The sources still to send: keys the API cannot take are skipped, and on a resumed
    batch the keys it has are counted as there (their files are never read)."""
    todo = []
    for source in sources:
        problem = key_problem(source.key)
        if problem:
            result.skipped.append(f"{source.origin or source.images[0]}: {problem}")
        else:
            todo.append(source)
    if resumed and todo:
        found = in_pieces(
            limit, [s.key for s in todo], lambda keys: client.batches.lookup(batch_id, keys=keys)
        )
        existing = {key for answer in found for key in answer.existing}
        result.existing += sum(1 for source in todo if source.key in existing)
        todo = [source for source in todo if source.key not in existing]
    return todo


def _stored(client: VisionqClient, batch_id: str, sha256s: list[str], limit: CallLimit) -> set[str]:
    """Which of ``sha256s`` the tenant stored, asked ``limit.size`` at a time (items of
    several images have more sha256s than the chunk has items)."""
    found = in_pieces(limit, sha256s, lambda piece: client.batches.lookup(batch_id, sha256s=piece))
    return {sha256 for answer in found for sha256 in answer.stored_sha256s}


def _tally(
    outcomes: list[ItemOutcome], sent: list[NewItem], inputs: dict[str, str], result: ChunkResult
) -> None:
    for outcome in outcomes:
        if outcome.outcome == "created":
            result.created += 1
        elif outcome.outcome == "exists":
            result.existing += 1
        else:
            error = outcome.error
            code, message = (error.code, error.message) if error else ("unknown", "?")
            where = inputs.get(outcome.key, outcome.key)
            result.rejected.append(Rejection(outcome.key, code, message, where))
    created = {outcome.key for outcome in outcomes if outcome.outcome == "created"}
    for item in sent:
        if item.key in created:
            refs = sum(1 for image in item.images if isinstance(image, Sha256Ref))
            result.referenced_images += refs
            result.uploaded_images += len(item.images) - refs


def _read_images(
    source: Source, data_of: dict[str, bytes], result: ChunkResult
) -> list[ItemImage] | None:
    """The item's images as sha256 names (bytes kept in ``data_of``) or URLs; None (and
    the item counted skipped) when a file is no image we can send."""
    images: list[ItemImage] = []
    for image in source.images:
        if isinstance(image, str) and is_url(image):
            images.append(image)
            continue
        path = Path(image)
        problem = image_problem(path)
        if problem is None:
            try:
                data = path.read_bytes()
            except OSError as exc:
                problem = f"{path}: cannot be read ({exc.strerror or exc})"
        if problem is not None:
            # A folder's file is named by its key; a manifest's by its line, then its path.
            where = source.origin or source.key
            reason = problem if source.origin else problem.removeprefix(f"{path}: ")
            result.skipped.append(f"{where}: {reason}")
            return None
        digest = hashlib.sha256(data).hexdigest()
        data_of.setdefault(digest, data)
        images.append(Sha256Ref(digest))
    return images


def _with_refs(item: NewItem, stored: set[str], data_of: dict[str, bytes]) -> NewItem:
    """``item`` with each image the API does not have as its bytes (one shared object per
    distinct image, so the request carries it once), the others as sha256 references."""
    images: list[ItemImage] = [
        data_of[image.sha256]
        if isinstance(image, Sha256Ref) and image.sha256 not in stored
        else image
        for image in item.images
    ]
    return NewItem(item.key, images, item.overrides)


def _add(
    client: VisionqClient,
    batch_id: str,
    items: list[NewItem],
    stop: threading.Event,
    limit: CallLimit,
) -> list[ItemOutcome]:
    """The outcome of each of ``items``, added at most ``limit.size`` per call."""
    answers = in_pieces(limit, items, lambda piece: _add_call(client, batch_id, piece, stop))
    return [outcome for answer in answers for outcome in answer.items]


def _add_call(
    client: VisionqClient, batch_id: str, items: list[NewItem], stop: threading.Event
) -> ItemsAdded:
    """add_items, waiting out the API's push-back (too many unfinished jobs) until the run
    is stopped: Stopped then, nothing of this piece added."""
    deadline = time.monotonic() + PUSHBACK_LIMIT_S
    while True:
        if stop.is_set():
            raise Stopped
        try:
            return client.batches.add_items(batch_id, items)
        except VisionqError as exc:
            if exc.code != "too_many_active_jobs" or time.monotonic() > deadline:
                raise
            stop.wait(exc.retry_after or 10.0)
