"""Content-addressed image store: bytes filed under their sha256, written once."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import fsspec
from fsspec.asyn import AsyncFileSystem
from fsspec.implementations.local import LocalFileSystem

# The errors and defaults are part of this module's interface (imported from here).
from visionq.models.blob_io import (
    GCS_REQUEST_TIMEOUT_S,
    S3_DEFAULTS,
    SETTINGS_HINT,
    BlobNotFoundError,
    BlobStoreMisconfiguredError,
    BlobStoreUnavailableError,
    modified_time,
    read_chunks,
    unavailable_error,
    with_timeouts,
)

if TYPE_CHECKING:
    from visionq.models.settings import Settings

TEMPORARY_SUFFIX = ".tmp"
_TRASH = "trash"
_SHARD = re.compile(r"[0-9a-f]{2}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
T = TypeVar("T")

__all__ = [
    "CALL_TIMEOUT_S", "CHECK_TIMEOUT_S", "GCS_REQUEST_TIMEOUT_S", "S3_DEFAULTS",
    "TEMPORARY_SUFFIX", "BlobNotFoundError", "BlobStore", "BlobStoreMisconfiguredError",
    "BlobStoreUnavailableError", "startup_problem", "with_timeouts",
]  # fmt: skip

# Deadlines of a whole call (retries included) to an object store (see blob_io.py): read
# here at each call, so a test may shorten them.
CALL_TIMEOUT_S = 20.0  # a put or read: below a client's usual 30-60 s request timeout
CHECK_TIMEOUT_S = 5.0  # the start-up and /readyz probe


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
            raise unavailable_error(exc) from exc
        # Write then rename, so a reader never sees a half-written image.
        temporary = f"{path}.{uuid.uuid4().hex}{TEMPORARY_SUFFIX}"
        stored = False
        try:
            with self._fs.open(temporary, "wb") as handle:
                handle.write(data)
            self._fs.mv(temporary, path)
            stored = True
        except OSError as exc:
            raise unavailable_error(exc) from exc
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
        return unavailable_error(exc, done, where=(self._url, self._endpoint))

    def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256`` (or waiting in the trash: see :meth:`trash`)."""
        data: bytes = self._found(sha256, lambda path: self._call(self._fs.cat_file, path))
        return data

    def size(self, sha256: str) -> int:
        """The blob's length in bytes; :class:`BlobNotFoundError` when it is not stored."""
        return int(self._found(sha256, lambda path: self._call(self._fs.size, path)))

    def head(self, sha256: str, length: int = 262144) -> bytes:
        """The blob's first ``length`` bytes (all of it when shorter): one ranged read."""
        # start/end by name: s3fs's cat_file takes a version id second.
        ranged = partial(self._fs.cat_file, start=0, end=length)
        data: bytes = self._found(sha256, lambda path: self._call(ranged, path))
        return data

    def iter_chunks(self, sha256: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The blob in pieces of ``chunk`` bytes, for a streamed answer. The blob is opened
        now, so a missing one raises :class:`BlobNotFoundError` here, before any is sent.
        A read that fails later (the store gone mid-answer) is logged with the code
        ``blob_store_unavailable`` and ends the pieces early: the headers are sent by then,
        so the short body (against its Content-Length) is what tells the client."""
        handle = self._found(sha256, lambda path: self._fs.open(path, "rb", block_size=chunk))
        return read_chunks(handle, chunk, sha256)

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
                    modified = modified_time(entry)
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
            f"VISIONQ_BLOB_DIR {settings.blob_dir} cannot be opened ({exc}); {SETTINGS_HINT} "
            '(s3:// and gs:// need pip install "visionq[s3,gcs]").'
        )
    return None
