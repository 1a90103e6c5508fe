"""The requests of a Gemini batch: inline while the create body fits, else a JSONL file.

Each job's request is built by worker/requests.build_request (same prompt, images,
downscale and generation config as the sync lane). Requests stay in memory, inline, while
the whole create body stays under VISIONQ_BATCH_INLINE_MAX_BYTES (Gemini caps inline batch
input at 20 MB). Past it, the batch switches to file mode: every request (those built so
far included) is written as one JSONL line to a temporary file, images of at least
VISIONQ_BATCH_FILE_IMAGE_MIN_BYTES or used by two jobs of the batch going by File API
reference (uploaded once, reused by sha256), so memory never holds more than the inline cap.

A JSONL line is made from the same SDK objects as an inline request
(``{"key": job_id, "request": {"contents", "generationConfig"}}``, camelCase, base64 bytes);
tests/unit/test_batch_requests.py checks it equals what the SDK sends for an inline request.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Literal

import fsspec
from fsspec.implementations.local import LocalFileSystem
from google.genai import types

from visionq.models.blobs import TEMPORARY_SUFFIX, BlobNotFoundError, BlobStore
from visionq.models.leases import JobSpec
from visionq.models.settings import Settings
from visionq.vision.catalogue import Catalogue
from visionq.vision.errors import CodedError
from visionq.vision.formats import ImageRejectedError
from visionq.vision.memory import DecodeLimits
from visionq.vision.transport import FILE, INLINE
from visionq.worker.errors import GeminiCallError
from visionq.worker.files import UploadCache
from visionq.worker.requests import GeminiRequest, build_request

InputMode = Literal["inline", "file"]
# What the create body adds around each inline request (metadata, keys, JSON punctuation):
# generously rounded up, so the body never reaches Gemini's cap.
REQUEST_OVERHEAD_BYTES = 2048
# While a batch is built, the caller's ``renew`` (the lane's lock) runs at most this often:
# building 1,000 requests (decodes, uploads) outlasts a short lock, a Redis call per image
# would be waste.
RENEW_EVERY_S = 1.0
# Errors that are the job's own (its image is gone or undecodable): it fails, the rest go.
JOB_ERRORS: tuple[type[CodedError], ...] = (BlobNotFoundError, ImageRejectedError)


@dataclass(frozen=True)
class BatchPolicy:
    """How a batch's requests are sent (from the settings)."""

    inline_max_bytes: int
    file_image_min_bytes: int
    # The least time a referenced file must have left (VISIONQ_BATCH_FILE_MARGIN_S).
    file_margin: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchPolicy:
        return cls(
            inline_max_bytes=settings.batch_inline_max_bytes,
            file_image_min_bytes=settings.batch_file_image_min_bytes,
            # Never less than a sync call's margin.
            file_margin=timedelta(
                seconds=max(settings.batch_file_margin_s, settings.file_expiry_margin_s)
            ),
        )


@dataclass
class BatchInput:
    """The built requests of a batch: inline ones, or the JSONL file (``path``) holding them.

    ``failed``: jobs left out for their own reason (their error, to fail them with);
    ``transports``: per job, how each image went (inline or file), for the job's record.
    """

    mode: InputMode
    job_ids: list[str] = field(default_factory=list)
    inline: list[types.InlinedRequest] = field(default_factory=list)
    path: Path | None = None
    request_bytes: int = 0
    failed: dict[str, CodedError] = field(default_factory=dict)
    transports: dict[str, list[str]] = field(default_factory=dict)

    def discard(self) -> None:
        """Remove the JSONL file (idempotent)."""
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _content(request: GeminiRequest) -> types.Content:
    return types.Content(role="user", parts=request.parts)


def _config(request: GeminiRequest) -> types.GenerateContentConfig | None:
    return types.GenerateContentConfig(**request.config) if request.config else None


def inlined_request(job_id: str, request: GeminiRequest) -> types.InlinedRequest:
    """The SDK's inline batch request of a job; its id rides in the echoed metadata."""
    return types.InlinedRequest(
        contents=[_content(request)], config=_config(request), metadata={"job_id": job_id}
    )


def jsonl_line(job_id: str, request: GeminiRequest) -> dict[str, Any]:
    """The JSONL input line of a job: ``{"key", "request": {"contents", "generationConfig"}}``
    from the same SDK objects as :func:`inlined_request` (camelCase, bytes in base64)."""
    content = _content(request).model_dump(mode="json", by_alias=True, exclude_none=True)
    body: dict[str, Any] = {"contents": [content]}
    config = _config(request)
    if config is not None:
        body["generationConfig"] = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"key": job_id, "request": body}


def _encoded(line: dict[str, Any]) -> bytes:
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class Throttled:
    """Runs ``action`` when called, at most once per ``every_s`` (counted from creation)."""

    def __init__(
        self,
        action: Callable[[], None],
        *,
        every_s: float = RENEW_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._action = action
        self._every_s = every_s
        self._clock = clock
        self._last = clock()

    def __call__(self) -> None:
        now = self._clock()
        if now - self._last >= self._every_s:
            self._last = now
            self._action()


# A scratch file in the temporary directory older than this was left by a killed worker
# (a batch file is uploaded, or its output read, within minutes; then deleted).
SCRATCH_STALE_S = 24 * 3600.0


def scratch_dir(settings: Settings) -> Path:
    """Where a batch's JSONL input and downloaded output live while in use: beside the
    blobs when the store is local (the sweeper removes ``*.tmp`` a killed worker left
    there), else the system's temporary directory, where a day-old ``*.tmp`` (a killed
    worker's) is removed now. Each file is deleted once uploaded or read (try/finally)."""
    # Decided from the URL alone: building a file system here would open a second,
    # unconfigured s3fs/gcsfs (no VISIONQ_BLOB_STORAGE_OPTIONS; gcsfs looks for default
    # credentials as it starts). The same test as BlobStore's.
    local = fsspec.core.split_protocol(settings.blob_dir)[0] in (None, "file", "local")
    root = LocalFileSystem._strip_protocol(settings.blob_dir) if local else ""
    folder = (Path(root) if local else Path(tempfile.gettempdir())) / "batch-tmp"
    folder.mkdir(parents=True, exist_ok=True)
    if not local:
        cutoff = time.time() - SCRATCH_STALE_S
        for path in folder.glob(f"*{TEMPORARY_SUFFIX}"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
    return folder


def scratch_file(folder: Path, what: str) -> Path:
    """A new temporary file name in ``folder`` ending in ``.tmp``."""
    return folder / f"{what}-{uuid.uuid4().hex}{TEMPORARY_SUFFIX}"


class BatchBuilder:
    """Builds a batch's requests job by job (see the module docstring)."""

    def __init__(
        self,
        *,
        blobs: BlobStore,
        uploads: UploadCache,
        catalogue: Catalogue,
        policy: BatchPolicy,
        folder: Path,
        limits: DecodeLimits | None = None,
        renew_every_s: float = RENEW_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._renew_every_s = renew_every_s
        self._clock = clock
        self._blobs = blobs
        self._uploads = uploads
        self._catalogue = catalogue
        self._policy = policy
        self._folder = folder
        self._limits = limits

    def build(
        self,
        specs: Sequence[JobSpec],
        *,
        cap: int | None = None,
        renew: Callable[[], None] | None = None,
    ) -> BatchInput:
        """The requests of ``specs`` (inline, or a JSONL file the caller must ``discard``).

        A job whose images are missing or undecodable is left out (``failed``); an upload
        error (GeminiCallError) propagates: the batch is not sent, its jobs wait for the next
        one. ``cap`` replaces max_output_tokens when given. ``renew`` (the lane's lock) is
        called before each request and each upload, at most once per ``renew_every_s``.
        """
        keep = Throttled(renew or (lambda: None), every_s=self._renew_every_s, clock=self._clock)
        counts = Counter(sha for spec in specs for sha in {item.sha256 for item in spec.inputs})
        shared = {sha for sha, count in counts.items() if count >= 2}
        batch = BatchInput(mode="inline")
        pending: list[tuple[JobSpec, GeminiRequest]] = []
        size = 0
        handle: IO[bytes] | None = None
        try:
            for spec in specs:
                keep()
                try:
                    request = self._request(spec, cap)
                except JOB_ERRORS as exc:
                    batch.failed[spec.id] = exc
                    continue
                if handle is None:
                    size += len(_encoded(jsonl_line(spec.id, request))) + REQUEST_OVERHEAD_BYTES
                    pending.append((spec, request))
                    if size < self._policy.inline_max_bytes:
                        continue
                    # Past the inline cap: everything so far and from now on goes to a file.
                    batch.mode = "file"
                    batch.path = scratch_file(self._folder, "batch-input")
                    handle = batch.path.open("wb")
                    batch.request_bytes = 0
                    for earlier, earlier_request in pending:
                        self._write(batch, handle, earlier, earlier_request, shared, keep=keep)
                    pending.clear()
                    continue
                self._write(batch, handle, spec, request, shared, keep=keep)
        except BaseException:
            if handle is not None:
                handle.close()
            batch.discard()
            raise
        if handle is not None:
            handle.close()
            return batch
        for spec, request in pending:
            batch.job_ids.append(spec.id)
            batch.inline.append(inlined_request(spec.id, request))
            batch.transports[spec.id] = request.transports
        batch.request_bytes = size
        return batch

    def _request(self, spec: JobSpec, cap: int | None) -> GeminiRequest:
        # Every image inline at first: whether some go by file is decided per batch.
        request = build_request(
            spec, blobs=self._blobs, uploads=self._uploads, inline_limit=sys.maxsize,
            catalogue=self._catalogue, limits=self._limits,
        )  # fmt: skip
        if cap is not None:
            request.config["max_output_tokens"] = cap
        return request

    def _write(
        self,
        batch: BatchInput,
        handle: IO[bytes],
        spec: JobSpec,
        request: GeminiRequest,
        shared: set[str],
        *,
        keep: Callable[[], None],
    ) -> None:
        try:
            self._by_reference(spec, request, shared, keep)
        except JOB_ERRORS as exc:
            batch.failed[spec.id] = exc
            return
        except GeminiCallError as exc:
            if exc.retryable:
                raise  # Gemini's trouble, not the image's: the batch goes on the next tick
            batch.failed[spec.id] = exc  # Gemini refused this image: the job fails
            return
        data = _encoded(jsonl_line(spec.id, request))
        handle.write(data)
        batch.request_bytes += len(data)
        batch.job_ids.append(spec.id)
        batch.transports[spec.id] = request.transports

    def _by_reference(
        self, spec: JobSpec, request: GeminiRequest, shared: set[str], keep: Callable[[], None]
    ) -> None:
        """Send large or shared images of a file-mode request by File API reference."""
        for index, part in enumerate(request.parts):
            blob = part.inline_data
            if blob is None or blob.data is None or index >= len(spec.inputs):
                continue
            data, mime_type = blob.data, blob.mime_type or spec.inputs[index].mime_type
            big = len(data) >= self._policy.file_image_min_bytes
            if not (big or spec.inputs[index].sha256 in shared):
                continue
            # The sent bytes are in the blob store under their own sha256 (an original, or
            # the downscaled copy build_request stored).
            keep()  # an upload may take seconds
            # The file must outlive the batch, not just one call: the batch's margin.
            uri = self._uploads.uri_for(
                hashlib.sha256(data).hexdigest(), mime_type, len(data),
                margin=self._policy.file_margin,
            )  # fmt: skip
            request.parts[index] = types.Part(
                file_data=types.FileData(file_uri=uri, mime_type=mime_type),
                media_resolution=part.media_resolution,
            )
            request.file_uris.append(uri)
            request.transports[index] = FILE


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per non-blank line (for tests and tools)."""
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                yield json.loads(raw)


__all__ = [
    "FILE",
    "INLINE",
    "BatchBuilder",
    "BatchInput",
    "BatchPolicy",
    "InputMode",
    "Throttled",
    "inlined_request",
    "jsonl_line",
    "read_lines",
    "scratch_dir",
    "scratch_file",
]
