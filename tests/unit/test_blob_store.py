"""BlobStore reads racing gc's trash and restore (models/blobs.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from visionq.models.blobs import BlobNotFoundError, BlobStore


def test_get_finds_a_blob_gc_restored_between_its_two_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(str(tmp_path))
    sha256 = store.put(b"image bytes")
    assert store.trash(sha256)
    ((trashed, _, _),) = list(store.trashed())
    original = BlobStore._trashed

    def restored_first(self: BlobStore, digest: str) -> list[str]:
        # gc puts the blob back after get() missed the main path, before it lists the trash.
        store.restore(trashed, sha256)
        return original(self, digest)

    monkeypatch.setattr(BlobStore, "_trashed", restored_first)
    assert store.get(sha256) == b"image bytes"


def test_get_of_a_blob_nowhere_is_not_found(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path))
    with pytest.raises(BlobNotFoundError):
        store.get(hashlib.sha256(b"never stored").hexdigest())
