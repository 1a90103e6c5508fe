"""worker/files.py UploadCache.uri_for: the margin before expiry is the caller's: a file
with 10 h left serves a sync call (1 h margin) but is uploaded again for a Gemini batch
(26 h margin), which may wait 24 h before Gemini reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pydantic
import pytest
from google.genai import types
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.blobs import BlobStore
from visionq.models.settings import Settings
from visionq.worker.batch_requests import BatchPolicy
from visionq.worker.files import FilePolicy, UploadCache
from visionq.worker.gemini import GeminiCaller


class FakeGemini:
    """The File API calls of GeminiCaller: each upload lives ``lifetime`` from now."""

    def __init__(self, lifetime: timedelta) -> None:
        self.lifetime = lifetime
        self.uploads = 0
        self.deleted: list[str] = []

    def upload(self, data: bytes, *, mime_type: str, display_name: str) -> types.File:
        self.uploads += 1
        return types.File(
            name=f"files/f{self.uploads}", uri=f"https://emulator/v1beta/files/f{self.uploads}",
            state=types.FileState.ACTIVE, expiration_time=datetime.now(UTC) + self.lifetime,
        )  # fmt: skip

    def get_file(self, name: str) -> types.File:
        raise AssertionError("uploads are ACTIVE at once here")

    def delete_file(self, name: str) -> None:
        self.deleted.append(name)


def test_a_file_with_10_h_left_serves_a_sync_call_not_a_batch(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = Settings()
    blobs = BlobStore(str(tmp_path / "blobs"))
    sha = blobs.put(b"\x89PNG" + b"x" * 100)
    gemini = FakeGemini(lifetime=timedelta(hours=10))
    cache = UploadCache(
        sessions=sessions, gemini=cast(GeminiCaller, gemini), blobs=blobs, identity="test",
        policy=FilePolicy.from_settings(settings),
    )  # fmt: skip
    first = cache.uri_for(sha, "image/png", 104)
    assert gemini.uploads == 1
    # A sync call (VISIONQ_FILE_EXPIRY_MARGIN_S, 1 h): 10 h left is plenty, reused.
    assert cache.uri_for(sha, "image/png", 104) == first and gemini.uploads == 1
    # A batch (VISIONQ_BATCH_FILE_MARGIN_S, 26 h): 10 h left could expire while it waits.
    batch_margin = BatchPolicy.from_settings(settings).file_margin
    assert batch_margin == timedelta(hours=26)
    again = cache.uri_for(sha, "image/png", 104, margin=batch_margin)
    assert again != first and gemini.uploads == 2
    assert gemini.deleted == ["files/f1"]  # the file it replaces is freed


def test_the_batch_margin_stays_below_the_file_lifetime() -> None:
    with pytest.raises(pydantic.ValidationError, match="batch_file_margin_s"):
        Settings(batch_file_margin_s=48 * 3600)
