"""Content-addressed image store: bytes filed under their sha256, written once."""

from __future__ import annotations

import contextlib
import copy
import errno
import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, TypeVar

import fsspec
from fsspec.asyn import AsyncFileSystem
from fsspec.implementations.local import LocalFileSystem

from visionq.vision.errors import FixedCodeError

if TYPE_CHECKING:
    from visionq.models.settings import Settings

# A write refused for lack of room: the disk or quota is full, the file system read-only.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
TEMPORARY_SUFFIX = ".tmp"
_TRASH = "trash"
_SHARD = re.compile(r"[0-9a-f]{2}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
T = TypeVar("T")
log = logging.getLogger(__name__)

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
CALL_TIMEOUT_S = 20.0  # a put or read: below a client's usual 30-60 s request timeout
CHECK_TIMEOUT_S = 5.0  # the start-up and /readyz probe
_SETTINGS_HINT = "check VISIONQ_BLOB_DIR and VISIONQ_BLOB_STORAGE_OPTIONS"


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


class BlobStore:
    """Store at a local directory or any fsspec URL (s3://, gs://, ...).

    ``storage_options`` go to the fsspec file system as they are (VISIONQ_BLOB_STORAGE_OPTIONS:
    endpoint_url, key, secret, token, project, ...)."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        options = dict(storage_options or {})
        protocol = fsspec.core.split_protocol(url)[0]
        if protocol not in (None, "file", "local"):
            # s3fs and gcsfs cache directory listings: after gc listed a shard, put's
            # exists() could answer from that stale listing and skip writing a blob gc
            # trashed meanwhile, losing an input. Every look goes to the store instead.
            options.setdefault("use_listings_cache", False)
            options = with_timeouts(protocol, options)
        self._url = url
        self._endpoint = str(options.get("endpoint_url") or url)
        self._fs, root = fsspec.core.url_to_fs(url, **options)
        self._root = root.rstrip("/")
        if self.is_local:
            # A read-only store still opens (reads work); writes are refused with a 507.
            with contextlib.suppress(OSError):
                self._fs.makedirs(self._root, exist_ok=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStore:
        """The store VISIONQ_BLOB_DIR and VISIONQ_BLOB_STORAGE_OPTIONS name."""
        return cls(settings.blob_dir, settings.blob_storage_options)

    @property
    def is_local(self) -> bool:
        """True for a directory on this machine (temp+rename writes, ``*.tmp`` cleanup)."""
        return isinstance(self._fs, LocalFileSystem)

    def _path(self, sha256: str) -> str:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return f"{self._root}/{sha256[:2]}/{sha256}"

    def put(self, data: bytes) -> str:
        """Store ``data`` (once) and return its sha256.

        Raises :class:`BlobStoreUnavailableError` when the store refuses the write; no
        temporary file is left behind on any failure.
        """
        sha256 = hashlib.sha256(data).hexdigest()
        path = self._path(sha256)
        if not self.is_local:
            return self._put_object(path, sha256, data)
        try:
            if self._fs.exists(path):
                return sha256
            self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        except OSError as exc:
            raise _unavailable(exc) from exc
        # Write then rename, so a reader never sees a half-written image.
        temporary = f"{path}.{uuid.uuid4().hex}{TEMPORARY_SUFFIX}"
        stored = False
        try:
            with self._fs.open(temporary, "wb") as handle:
                handle.write(data)
            self._fs.mv(temporary, path)
            stored = True
        except OSError as exc:
            raise _unavailable(exc) from exc
        finally:
            if not stored:
                # A partial file would keep a full disk full: removed on every failure path
                # (the sweeper removes any a killed process left).
                with contextlib.suppress(OSError):
                    self._fs.rm_file(temporary)
        return sha256

    def _put_object(self, path: str, sha256: str, data: bytes) -> str:
        """An object store's write: ONE PutObject/upload, which readers see whole or not
        at all (no temporary object to leave behind; prefixes need no makedirs)."""
        try:
            # Content-addressed: an object already there holds these very bytes.
            if not self._call(self._fs.exists, path):
                self._call(self._fs.pipe_file, path, data)
        except Exception as exc:
            # s3fs/gcsfs raise OSError for most refusals, but botocore's and aiohttp's own
            # connection errors for an unreachable store: all are the store failing.
            raise self._unavailable(exc) from exc
        return sha256

    def _call(self, method: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """``method(*args)``, within ``timeout`` seconds (CALL_TIMEOUT_S) in all on an async
        file system (s3fs, gcsfs: fsspec's sync() cancels it and raises FSTimeoutError)."""
        if isinstance(self._fs, AsyncFileSystem):
            return method(*args, timeout=CALL_TIMEOUT_S if timeout is None else timeout)
        return method(*args)

    def check(self) -> None:
        """One cheap look at the store (the bucket of an object store), at start-up and by
        /readyz. Raises :class:`BlobStoreMisconfiguredError` for settings that can never
        work (missing bucket, access denied, a misspelt option), and
        :class:`BlobStoreUnavailableError` for a store that does not answer."""
        if self.is_local:
            return
        bucket = self._root.split("/", 1)[0]
        try:
            self._call(self._fs.info, bucket, timeout=CHECK_TIMEOUT_S)
        except Exception as exc:
            raise self._unavailable(exc, done="nothing can be stored") from exc

    def _unavailable(
        self, exc: BaseException, done: str = "nothing was stored"
    ) -> BlobStoreUnavailableError:
        """An object store's failure as the error the API and worker handle."""
        return _unavailable(exc, done, where=(self._url, self._endpoint))

    def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256`` (or waiting in the trash: see :meth:`trash`)."""
        data: bytes = self._found(sha256, lambda path: self._call(self._fs.cat_file, path))
        return data

    def size(self, sha256: str) -> int:
        """The blob's length in bytes; :class:`BlobNotFoundError` when it is not stored."""
        return int(self._found(sha256, lambda path: self._call(self._fs.size, path)))

    def head(self, sha256: str, length: int = 262144) -> bytes:
        """The blob's first ``length`` bytes (all of it when shorter): one ranged read."""
        data: bytes = self._found(sha256, lambda path: self._fs.cat_file(path, start=0, end=length))
        return data

    def iter_chunks(self, sha256: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The blob in pieces of ``chunk`` bytes, for a streamed answer. The blob is opened
        now, so a missing one raises :class:`BlobNotFoundError` here, before any is sent.
        A read that fails later (the store gone mid-answer) is logged with the code
        ``blob_store_unavailable`` and ends the pieces early: the headers are sent by then,
        so the short body (against its Content-Length) is what tells the client."""
        handle = self._found(sha256, lambda path: self._fs.open(path, "rb", block_size=chunk))
        return _chunks(handle, chunk, sha256)

    def _found(self, sha256: str, read: Callable[[str], T]) -> T:
        """``read`` applied to the blob's path, else to its copy waiting in the trash. An
        object store that cannot be reached raises :class:`BlobStoreUnavailableError` (an
        infrastructure fault: the API answers 503, the worker tries again later)."""
        self._path(sha256)  # a malformed digest is the caller's ValueError, not the store's
        if self.is_local:
            return self._found_here(sha256, read)
        try:
            return self._found_here(sha256, read)
        except BlobNotFoundError:
            raise
        except Exception as exc:
            raise self._unavailable(exc, done="nothing was read") from exc

    def _found_here(self, sha256: str, read: Callable[[str], T]) -> T:
        try:
            return read(self._path(sha256))
        except FileNotFoundError as exc:
            for path in self._trashed(sha256):
                with contextlib.suppress(FileNotFoundError):
                    return read(path)
            # gc may have restored the blob from the trash after the first miss: one more
            # look at the main path before calling an existing image missing.
            try:
                return read(self._path(sha256))
            except FileNotFoundError:
                raise BlobNotFoundError(sha256) from exc

    # --- garbage collection (models/retention.py) -------------------------------------
    # Deleting is two-phase: an unreferenced blob is first moved to the trash (a job that
    # took it meanwhile can still read it there, and gc puts it back), and only deleted
    # from the trash a grace period later, after its references are checked once more.

    def stored_before(self, cutoff: float) -> Iterator[str]:
        """The sha256 of every blob last written before ``cutoff`` (Unix time)."""
        try:
            shards = self._fs.ls(self._root, detail=True)
        except FileNotFoundError:
            return
        for shard in shards:
            name = shard["name"].rstrip("/").rsplit("/", 1)[-1]
            if shard["type"] != "directory" or not _SHARD.fullmatch(name):
                continue
            with contextlib.suppress(FileNotFoundError):
                for entry in self._fs.ls(shard["name"], detail=True):
                    sha256 = entry["name"].rsplit("/", 1)[-1]
                    modified = _modified(entry)
                    if _SHA256.fullmatch(sha256) and modified is not None and modified < cutoff:
                        yield sha256

    def trash(self, sha256: str) -> bool:
        """Move the blob to the trash, named with the time it was moved; False if gone."""
        target = f"{self._root}/{_TRASH}/{sha256}.{int(time.time())}"
        try:
            if self.is_local:
                self._fs.makedirs(f"{self._root}/{_TRASH}", exist_ok=True)
            # On an object store mv is copy+delete: a crash between them leaves both, and
            # gc's next pass restores (drops the copy) or purges it.
            self._fs.mv(self._path(sha256), target)
        except FileNotFoundError:
            return False
        return True

    def trashed(self) -> Iterator[tuple[str, str, float]]:
        """(path, sha256, Unix time it was trashed) of everything in the trash."""
        try:
            entries = self._fs.ls(f"{self._root}/{_TRASH}", detail=False)
        except FileNotFoundError:
            return
        for path in entries:
            sha256, _, moved = str(path).rsplit("/", 1)[-1].partition(".")
            if _SHA256.fullmatch(sha256) and moved.isdigit():
                yield str(path), sha256, float(moved)

    def restore(self, path: str, sha256: str) -> None:
        """Put a trashed blob back (it is referenced after all); drop it if stored anew.
        Gone from the trash already (another gc put it back or deleted it): nothing to do."""
        if self._fs.exists(self._path(sha256)):
            self.purge(path)
            return
        if self.is_local:
            self._fs.makedirs(self._path(sha256).rsplit("/", 1)[0], exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self._fs.mv(path, self._path(sha256))

    def purge(self, path: str) -> None:
        """Delete a trashed blob for good."""
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(path)

    def _trashed(self, sha256: str) -> list[str]:
        self._path(sha256)  # checks it is a digest: no glob characters reach the pattern
        try:
            return [str(path) for path in self._fs.glob(f"{self._root}/{_TRASH}/{sha256}.*")]
        except FileNotFoundError:
            return []

    def remove_stale_temporaries(self, older_than_s: float) -> int:
        """Delete ``*.tmp`` files older than ``older_than_s`` (left by a killed process);
        returns how many. Local stores only: object stores write whole objects."""
        if not self.is_local:
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        try:
            shards = [entry for entry in os.scandir(self._root) if entry.is_dir()]
        except OSError:
            return 0
        for shard in shards:
            with contextlib.suppress(OSError), os.scandir(shard.path) as entries:
                for entry in entries:
                    if not entry.name.endswith(TEMPORARY_SUFFIX):
                        continue
                    with contextlib.suppress(OSError):
                        if entry.stat().st_mtime < cutoff:
                            os.unlink(entry.path)
                            removed += 1
        return removed


def _modified(info: dict[str, Any]) -> float | None:
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


def _chunks(handle: IO[bytes], chunk: int, sha256: str) -> Iterator[bytes]:
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


def _unavailable(
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
        f"reachable and running, and {_SETTINGS_HINT}.",
        full=full,
    )


def startup_problem(settings: Settings) -> str | None:
    """What stops the configured store from working, for `visionq api` and `visionq worker`
    to refuse to start with (None: usable). A store that is down counts too: a process
    that starts anyway would answer 503 to every submit while looking healthy."""
    try:
        BlobStore.from_settings(settings).check()
    except BlobStoreUnavailableError as exc:
        return f"VISIONQ_BLOB_DIR {settings.blob_dir}: {exc}"
    except (ImportError, ValueError, TypeError) as exc:  # unknown protocol, missing s3fs/gcsfs
        return (
            f"VISIONQ_BLOB_DIR {settings.blob_dir} cannot be opened ({exc}); {_SETTINGS_HINT} "
            '(s3:// and gs:// need pip install "visionq[s3,gcs]").'
        )
    return None
