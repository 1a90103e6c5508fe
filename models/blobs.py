"""Content-addressed image store: bytes filed under their sha256, written once."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from visionq.vision.errors import FixedCodeError

# A write refused for lack of room: the disk or quota is full, the file system read-only.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
TEMPORARY_SUFFIX = ".tmp"
_TRASH = "trash"
_SHARD = re.compile(r"[0-9a-f]{2}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BlobNotFoundError(FixedCodeError, LookupError):
    """The blob store has no object with this sha256 (its message): an input removed
    (e.g. by gc) before the worker or a retry read it."""

    codes = frozenset({"blob_not_found"})


class BlobStoreUnavailableError(Exception):
    """The store cannot take a write now (an infrastructure fault, not the job's): ``full``
    when it has no room or is read-only (HTTP 507), otherwise failing (HTTP 503)."""

    def __init__(self, message: str, *, full: bool) -> None:
        super().__init__(message)
        self.full = full


class BlobStore:
    """Store at a local directory or any fsspec URL (s3://, gs://, ...)."""

    def __init__(self, url: str) -> None:
        self._fs, root = fsspec.core.url_to_fs(url)
        self._root = root.rstrip("/")
        if isinstance(self._fs, LocalFileSystem):
            # A read-only store still opens (reads work); writes are refused with a 507.
            with contextlib.suppress(OSError):
                self._fs.makedirs(self._root, exist_ok=True)

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

    def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256`` (or waiting in the trash: see :meth:`trash`)."""
        try:
            with self._fs.open(self._path(sha256), "rb") as handle:
                data: bytes = handle.read()
        except FileNotFoundError as exc:
            for path in self._trashed(sha256):
                with contextlib.suppress(FileNotFoundError), self._fs.open(path, "rb") as handle:
                    found: bytes = handle.read()
                    return found
            # gc may have restored the blob from the trash after the first miss: one more
            # look at the main path before calling an existing image missing.
            try:
                with self._fs.open(self._path(sha256), "rb") as handle:
                    restored: bytes = handle.read()
            except FileNotFoundError:
                raise BlobNotFoundError(sha256) from exc
            return restored
        return data

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
            self._fs.makedirs(f"{self._root}/{_TRASH}", exist_ok=True)
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
        if not isinstance(self._fs, LocalFileSystem):
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


def _unavailable(exc: OSError) -> BlobStoreUnavailableError:
    full = exc.errno in _NO_ROOM
    reason = "is full or read-only" if full else "failed"
    message = (
        f"The image store {reason} ({exc.strerror or exc}); nothing was stored. "
        "Retry after the Retry-After delay; operators: free space or fix the blob directory."
    )
    return BlobStoreUnavailableError(message, full=full)
