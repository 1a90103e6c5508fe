"""Content-addressed image store: bytes filed under their sha256, written once."""

from __future__ import annotations

import hashlib
import uuid

import fsspec
from fsspec.implementations.local import LocalFileSystem


class BlobNotFoundError(LookupError):
    """The blob store has no object with this sha256."""


class BlobStore:
    """Store at a local directory or any fsspec URL (s3://, gs://, ...)."""

    def __init__(self, url: str) -> None:
        self._fs, root = fsspec.core.url_to_fs(url)
        self._root = root.rstrip("/")
        if isinstance(self._fs, LocalFileSystem):
            self._fs.makedirs(self._root, exist_ok=True)

    def _path(self, sha256: str) -> str:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return f"{self._root}/{sha256[:2]}/{sha256}"

    def put(self, data: bytes) -> str:
        """Store ``data`` (once) and return its sha256."""
        sha256 = hashlib.sha256(data).hexdigest()
        path = self._path(sha256)
        if self._fs.exists(path):
            return sha256
        self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        # Write then rename, so a reader never sees a half-written image.
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        with self._fs.open(temporary, "wb") as handle:
            handle.write(data)
        self._fs.mv(temporary, path)
        return sha256

    def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``."""
        try:
            with self._fs.open(self._path(sha256), "rb") as handle:
                data: bytes = handle.read()
        except FileNotFoundError as exc:
            raise BlobNotFoundError(sha256) from exc
        return data

    def exists(self, sha256: str) -> bool:
        return bool(self._fs.exists(self._path(sha256)))
