"""The Gemini Batch lane's scratch files with an object store (worker/batch_requests.py):
in the temporary directory, a killed worker's day-old ones removed when a lane starts."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import fsspec
import pytest

from visionq.models.settings import Settings
from visionq.worker.batch_requests import SCRATCH_STALE_S, scratch_dir


def test_a_killed_workers_scratch_files_are_removed_and_fresh_ones_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    settings = Settings(data_dir=tmp_path / "data", blob_dir="memory://visionq/blobs")
    folder = scratch_dir(settings)
    assert folder == tmp_path / "batch-tmp"
    stale, fresh, other = folder / "a.tmp", folder / "b.tmp", folder / "notes.txt"
    for path in (stale, fresh, other):
        path.write_bytes(b"x")
    old = time.time() - SCRATCH_STALE_S - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    assert scratch_dir(settings) == folder
    assert not stale.exists() and fresh.exists() and other.exists()


def test_a_local_store_keeps_scratch_beside_the_blobs(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, blob_dir=str(tmp_path / "blobs"))
    assert scratch_dir(settings) == tmp_path / "blobs" / "batch-tmp"


@pytest.mark.parametrize("url", ["s3://bucket/blobs", "gs://bucket/blobs"])
def test_an_object_store_is_told_from_its_url_without_opening_a_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    # A second s3fs/gcsfs built here would lack the storage options (review finding 30).
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("scratch_dir opened a file system")

    monkeypatch.setattr(fsspec.core, "url_to_fs", refuse)
    monkeypatch.setattr(fsspec, "filesystem", refuse)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    settings = Settings(data_dir=tmp_path / "data", blob_dir=url)
    assert scratch_dir(settings) == tmp_path / "batch-tmp"


def test_a_file_url_keeps_scratch_beside_the_blobs(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, blob_dir=f"file://{tmp_path / 'blobs'}")
    assert scratch_dir(settings) == tmp_path / "blobs" / "batch-tmp"
