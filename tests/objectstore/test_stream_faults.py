"""A store that fails after an image's answer began (review of issue 23, finding 9): the
stream ends short and the failure is logged with a code, never an ASGI traceback; a mask
is read whole first, so a failing store is a 503 in the one error shape.

The API runs in process (tests/integration/inprocess.py) on S3 (a moto server of this
module's own, which a test stops) with a real SQLite database and Redis."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import scene_png, submit
from tests.integration.inprocess import InProcessApi, in_process_api
from tests.objectstore.conftest import require
from tests.objectstore.servers import make_bucket, s3_options, start_moto
from tests.services import redis_server
from visionq.api.deps import ApiResources
from visionq.models.blobs import BlobStore

pytestmark = pytest.mark.objectstore

BUCKET = "visionq-stream"


@pytest.fixture
def s3_api(tmp_path: Path) -> Iterator[tuple[InProcessApi, Any]]:
    """(the in-process API on S3, its moto server)."""
    require("moto", "s3fs", "boto3")
    moto = start_moto()
    try:
        make_bucket(moto.endpoint_url, BUCKET)
        # One attempt, short timeouts: a stopped store fails at once, not after retries.
        options = {
            **s3_options(moto.endpoint_url),
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
        }
        with (
            redis_server(tmp_path / "redis") as redis_url,
            in_process_api(
                tmp_path, redis_url, ("acme",),
                blob_dir=f"s3://{BUCKET}/blobs", blob_storage_options=options,
            ) as api,
        ):  # fmt: skip
            yield api, moto
    finally:
        moto.stop()


def test_a_store_failing_mid_stream_cuts_the_answer_and_logs_it(
    s3_api: tuple[InProcessApi, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, moto = s3_api
    image, _ = scene_png(11)
    with api.client() as client:
        response = submit(client, image, task="caption")
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        resources: ApiResources = api.app.state.resources
        blobs: BlobStore = resources.blobs
        opened = blobs.iter_chunks

        def open_then_lose_the_store(sha256: str, chunk: int = 1 << 20) -> Iterator[bytes]:
            # size() answered and the blob is open: the headers go out with its length,
            # then every read fails (the store is gone).
            chunks = opened(sha256, chunk)
            moto.stop()
            return chunks

        monkeypatch.setattr(blobs, "iter_chunks", open_then_lose_the_store)
        with caplog.at_level(logging.WARNING, logger="visionq.models.blobs"):
            shown = client.get(f"/v1/jobs/{job_id}/images/0")
    assert shown.status_code == 200
    assert int(shown.headers["content-length"]) == len(image)
    assert len(shown.content) < len(image)  # cut short: the client can tell
    cut = [record for record in caplog.records if getattr(record, "code", None)]
    assert [record.code for record in cut] == ["blob_store_unavailable"]  # type: ignore[attr-defined]
