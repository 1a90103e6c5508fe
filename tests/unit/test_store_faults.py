"""Storage faults (issue 16): the blob store leaves no temporary file, the API answers
503/507 with Retry-After, and the worker keeps a paid answer through a storage fault."""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.exc import OperationalError

from tests.unit.test_pipeline_answers import _run, _text, context  # noqa: F401 (fixture)
from visionq.api.errors import install_error_handlers
from visionq.models.blobs import BlobStore, BlobStoreUnavailableError
from visionq.models.settings import Settings
from visionq.worker.context import WorkerContext
from visionq.worker.storing import DEFERRED, keep

MODEL = "gemini-3.6-flash"
LOCKED = OperationalError("INSERT", {}, Exception("database is locked"))


def _temporaries(root: Path) -> list[Path]:
    return list(root.rglob("*.tmp"))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EIO])
def test_a_failed_blob_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    store = BlobStore(str(tmp_path))

    def refuse(*_: Any, **__: Any) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(store._fs, "mv", refuse)  # the temporary file is written by now
    with pytest.raises(BlobStoreUnavailableError) as raised:
        store.put(b"image bytes")
    assert raised.value.full is (code != errno.EIO)
    assert _temporaries(tmp_path) == []


def test_stale_temporaries_are_removed_and_fresh_ones_kept(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path))
    sha = store.put(b"kept")
    shard = tmp_path / sha[:2]
    stale, fresh = shard / f"{sha}.a.tmp", shard / f"{sha}.b.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    assert store.remove_stale_temporaries(600) == 1
    assert not stale.exists() and fresh.exists() and store.get(sha) == b"kept"


def _app() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/locked")
    def locked() -> None:
        raise LOCKED

    @app.get("/full")
    def full() -> None:
        raise BlobStoreUnavailableError("full", full=True)

    @app.get("/failing")
    def failing() -> None:
        raise BlobStoreUnavailableError("io", full=False)

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("/locked", 503, "unavailable"), ("/full", 507, "insufficient_storage"),
     ("/failing", 503, "unavailable")],
)  # fmt: skip
def test_storage_faults_are_503_or_507_with_retry_after(path: str, status: int, code: str) -> None:
    response = _app().get(path)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert int(response.headers["Retry-After"]) > 0


def test_keep_retries_storage_faults_then_stores() -> None:
    faults = [LOCKED, BlobStoreUnavailableError("full", full=True), redis.ConnectionError("down")]

    def store() -> str:
        if faults:
            raise faults.pop(0)
        return "succeeded"

    outcome = keep(store, job_id="j", deadline=time.monotonic() + 60, base_s=0.001,
                   max_delay_s=0.002)  # fmt: skip
    assert outcome == "succeeded" and faults == []


def test_keep_defers_at_the_deadline_and_lets_the_jobs_own_errors_through() -> None:
    def locked() -> str:
        raise LOCKED

    assert keep(locked, job_id="j", deadline=time.monotonic() + 0.05, base_s=0.01,
                max_delay_s=0.02) == DEFERRED  # fmt: skip

    def bug() -> str:
        raise ValueError("not a storage fault")

    with pytest.raises(ValueError):
        keep(bug, job_id="j", deadline=time.monotonic() + 60, base_s=0.01, max_delay_s=0.02)


def test_a_locked_database_after_the_answer_does_not_fail_the_job(
    context: WorkerContext,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import visionq.worker.pipeline as pipeline

    real = pipeline.complete_run
    calls = []

    def locked_twice(*args: Any, **kwargs: Any) -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise LOCKED
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "complete_run", locked_twice)
    job, gemini = _run(context, [_text("Two shapes.", model=MODEL)], model=MODEL)
    assert job.status == "succeeded" and job.result == {"text": "Two shapes."}
    assert len(gemini.configs) == 1 and len(calls) == 3  # one paid call, stored on try 3


def test_a_full_store_while_storing_masks_is_waited_out(
    context: WorkerContext,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = context.blobs.put
    puts: list[int] = []
    refusals: list[int] = []

    def full_twice(data: bytes) -> str:
        puts.append(1)
        if len(puts) > 1 and len(refusals) < 2:  # the masks, not the input image (put 1)
            refusals.append(1)
            raise BlobStoreUnavailableError("full", full=True)
        return real(data)

    buffer = io.BytesIO()
    Image.new("L", (64, 64), 255).save(buffer, "PNG")
    mask = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    answer = json.dumps([{"box_2d": [100, 100, 500, 500], "label": "shape", "mask": mask}])
    monkeypatch.setattr(context.blobs, "put", full_twice)
    job, _ = _run(context, [_text(answer, model=MODEL)], model=MODEL, task="segment")
    assert job.status == "succeeded", (job.error_code, job.error_message)
    assert job.result is not None and refusals == [1, 1]
    (segment,) = job.result["objects"]
    assert context.blobs.get(segment["mask_sha256"])  # stored: get raises for a missing blob


def test_settings_defaults() -> None:
    settings = Settings(gemini_api_key=None)
    assert settings.api_db_busy_timeout_s < 30 and settings.blob_tmp_grace_s > 0


def test_the_sweeper_removes_stale_temporaries_at_most_every_minute(tmp_path: Path) -> None:
    from unittest.mock import MagicMock

    from visionq.worker.sweeper import Sweeper

    store = BlobStore(str(tmp_path))
    shard = tmp_path / "ab"
    shard.mkdir()
    settings = Settings(gemini_api_key=None, blob_tmp_grace_s=600)
    sweeper = Sweeper(sessions=MagicMock(), send=MagicMock(), redis_client=MagicMock(),
                      settings=settings, blobs=store)  # fmt: skip
    hour_ago = time.time() - 3600
    for name in ("a.tmp", "b.tmp"):
        (shard / name).write_bytes(b"partial")
        os.utime(shard / name, (hour_ago, hour_ago))
    assert sweeper.remove_temporaries() == 2 and _temporaries(tmp_path) == []
    (shard / "c.tmp").write_bytes(b"partial")
    os.utime(shard / "c.tmp", (hour_ago, hour_ago))
    assert sweeper.remove_temporaries() == 0  # walked a moment ago: not again yet
