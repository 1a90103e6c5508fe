"""The blob store's helpers (models/blobs.py): its errors and how a failure reads, the
object stores' default timeouts, listed objects' times and streamed reads."""

from __future__ import annotations

import contextlib
import copy
import errno
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from visionq.vision.errors import FixedCodeError

# A write refused for lack of room: the disk or quota is full, the file system read-only.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
SETTINGS_HINT = "check VISIONQ_BLOB_DIR and VISIONQ_BLOB_STORAGE_OPTIONS"
log = logging.getLogger("visionq.models.blobs")  # one logger name for the store's lines

# A hung object store (connection accepted, no answer) must not hold a submit or a job's
# lease for minutes: s3fs/botocore and gcsfs otherwise wait 15 s to 300 s per request and
# retry up to 5-6 times. Defaults per request (VISIONQ_BLOB_STORAGE_OPTIONS wins, key by
# key), and a deadline on each whole call (retries included) of an async file system.
S3_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 3,
    "read_timeout": 10,
    "retries": {"max_attempts": 3, "mode": "standard"},
}
GCS_REQUEST_TIMEOUT_S = 10.0


class BlobNotFoundError(FixedCodeError, LookupError):
    """The blob store has no object with this sha256 (its message): an input removed
    (e.g. by gc) before the worker or a retry read it."""

    codes = frozenset({"blob_not_found"})


class BlobStoreUnavailableError(Exception):
    """The store cannot take a write now (an infrastructure fault, not the job's): ``full``
    when it has no room or is read-only (HTTP 507), otherwise failing (HTTP 503)."""

    #: A fault retrying cannot mend (no such bucket, access denied, a bad option): the API
    #: answers 503 without Retry-After; the operator must fix the settings.
    permanent = False

    def __init__(self, message: str, *, full: bool) -> None:
        super().__init__(message)
        self.full = full


class BlobStoreMisconfiguredError(BlobStoreUnavailableError):
    """The store's settings are wrong (missing bucket, access denied, an option the file
    system does not take): retrying will not help until VISIONQ_BLOB_DIR or
    VISIONQ_BLOB_STORAGE_OPTIONS is fixed. Still a BlobStoreUnavailableError, so a worker
    keeps a paid answer and tries again rather than failing the job."""

    permanent = True

    def __init__(self, message: str) -> None:
        super().__init__(message, full=False)


def modified_time(info: dict[str, Any]) -> float | None:
    """When a listed object was last written (Unix time), across fsspec backends; None
    when the backend does not say (such an object is never collected)."""
    for key in ("mtime", "LastModified", "updated", "last_modified"):
        value = info.get(key)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def read_chunks(handle: IO[bytes], chunk: int, sha256: str) -> Iterator[bytes]:
    sent = 0
    try:
        with handle:
            while piece := handle.read(chunk):
                sent += len(piece)
                yield piece
    except Exception as exc:  # after the answer began: no error status can be sent
        log.warning(
            "blob %s: the store failed after %d bytes were sent; the answer is cut short: %s",
            sha256, sent, exc,
            extra={"code": "blob_store_unavailable", "blob": sha256, "sent_bytes": sent},
        )  # fmt: skip


def with_timeouts(protocol: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with visionq's request timeouts added where the user gave none: s3fs's
    botocore ``config_kwargs`` (connect/read timeouts, retries), gcsfs's
    ``requests_timeout``. A key the user set is kept as it is."""
    if protocol in ("s3", "s3a"):
        given = options.get("config_kwargs")
        # A deep copy: botocore rewrites the retries dict it is given (max_attempts ->
        # total_max_attempts), which would change the defaults of every later store.
        config = copy.deepcopy({**S3_DEFAULTS, **(given if isinstance(given, dict) else {})})
        return {**options, "config_kwargs": config}
    if protocol in ("gs", "gcs"):
        return {"requests_timeout": GCS_REQUEST_TIMEOUT_S, **options}
    return options


def unavailable_error(
    exc: BaseException,
    done: str = "nothing was stored",
    where: tuple[str, str] | None = None,
) -> BlobStoreUnavailableError:
    """The error for a store's failure; ``where`` = (VISIONQ_BLOB_DIR, endpoint) for an
    object store, None for a local directory."""
    full = isinstance(exc, OSError) and exc.errno in _NO_ROOM
    detail = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError) and not str(exc):  # fsspec's FSTimeoutError: the deadline
        detail = "timed out: connected but no answer in time"
    if where is None:
        reason = "is full or read-only" if full else "failed"
        return BlobStoreUnavailableError(
            f"The image store {reason} ({detail}); {done}. Retry after the Retry-After delay; "
            "operators: free space or fix the blob directory (VISIONQ_BLOB_DIR).",
            full=full,
        )
    url, endpoint = where
    if isinstance(exc, FileNotFoundError):
        return BlobStoreMisconfiguredError(
            f"The object store {url} has no such bucket ({detail}); {done}. Operators: "
            f"create the bucket or fix VISIONQ_BLOB_DIR, then restart visionq."
        )
    if isinstance(exc, PermissionError):
        return BlobStoreMisconfiguredError(
            f"The object store {url} refused access ({detail}); {done}. Operators: check the "
            "credentials (VISIONQ_BLOB_STORAGE_OPTIONS key/secret/token, or AWS_* / "
            "GOOGLE_APPLICATION_CREDENTIALS) and the bucket's permissions."
        )
    if isinstance(exc, TypeError | ValueError):
        # s3fs hands unknown options to botocore's session at the first call.
        return BlobStoreMisconfiguredError(
            f"The object store {url} cannot be used with these options ({detail}); {done}. "
            "Operators: fix VISIONQ_BLOB_STORAGE_OPTIONS (a misspelt option?)."
        )
    return BlobStoreUnavailableError(
        f"The object store at {endpoint} failed or did not answer ({detail}); "
        f"{done}. Retry after the Retry-After delay; operators: check that the store is "
        f"reachable and running, and {SETTINGS_HINT}.",
        full=full,
    )
