"""A misconfigured or hung object store must not look healthy (review of issue 23, findings
1, 2 and 12): visionq bounds every store request by default (the user's options win),
``BlobStore.check`` tells a store that can never work (missing bucket, misspelt option)
from one that is down, `visionq api` and `visionq worker` refuse to start on either, and
the messages name what to fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import scene_png, submit
from tests.integration.inprocess import in_process_api
from tests.objectstore.servers import FakeGcs, MotoServer, s3_options
from tests.services import free_port, redis_server
from visionq.models.blobs import (
    CALL_TIMEOUT_S,
    S3_DEFAULTS,
    BlobStore,
    BlobStoreMisconfiguredError,
    BlobStoreUnavailableError,
    with_timeouts,
)

pytestmark = pytest.mark.objectstore


def test_s3_requests_are_bounded_by_default_and_the_users_options_win(
    moto_server: MotoServer, s3_bucket: str
) -> None:
    store = BlobStore(f"s3://{s3_bucket}/blobs", s3_options(moto_server.endpoint_url))
    store.check()  # botocore has read (and rewritten) its retries by now
    config = store._fs._prepare_config_kwargs()
    assert config["connect_timeout"] <= 5 and config["read_timeout"] <= 15
    retries = config["retries"]
    assert retries.get("max_attempts", retries.get("total_max_attempts", 99) - 1) <= 3
    assert S3_DEFAULTS["retries"] == {"max_attempts": 3, "mode": "standard"}  # unchanged
    mine = {**s3_options(moto_server.endpoint_url), "config_kwargs": {"read_timeout": 60}}
    config = BlobStore(f"s3://{s3_bucket}/mine", mine)._fs._prepare_config_kwargs()
    assert config["read_timeout"] == 60 and config["connect_timeout"] <= 5


def test_gcs_requests_are_bounded_by_default_and_the_users_options_win(
    fake_gcs: FakeGcs, gcs_bucket: str
) -> None:
    assert BlobStore(f"gs://{gcs_bucket}/b", fake_gcs.options)._fs.requests_timeout <= 15
    mine = {**fake_gcs.options, "requests_timeout": 99}
    assert BlobStore(f"gs://{gcs_bucket}/b", mine)._fs.requests_timeout == 99
    assert with_timeouts(None, {"a": 1}) == {"a": 1}  # a local directory: untouched
    assert CALL_TIMEOUT_S < 30  # a whole call ends before a client's usual request timeout


def test_a_missing_bucket_is_permanent_and_says_what_to_fix(moto_server: MotoServer) -> None:
    store = BlobStore("s3://no-such-bucket/blobs", s3_options(moto_server.endpoint_url))
    for attempt in (store.check, lambda: store.put(b"image")):
        with pytest.raises(BlobStoreMisconfiguredError) as raised:
            attempt()
        assert raised.value.permanent and not raised.value.full
        assert "no such bucket" in str(raised.value)
        assert "VISIONQ_BLOB_DIR" in str(raised.value)


def test_gcs_a_missing_bucket_is_permanent_and_a_real_one_passes(
    fake_gcs: FakeGcs, gcs_bucket: str
) -> None:
    BlobStore(f"gs://{gcs_bucket}/blobs", fake_gcs.options).check()
    missing = BlobStore("gs://no-such-bucket/blobs", fake_gcs.options)
    with pytest.raises(BlobStoreMisconfiguredError, match="no such bucket"):
        missing.check()
    with pytest.raises(BlobStoreMisconfiguredError, match="VISIONQ_BLOB_DIR"):
        missing.put(b"image")


def test_a_misspelt_option_is_permanent_and_names_the_setting(
    moto_server: MotoServer, s3_bucket: str
) -> None:
    options = {**s3_options(moto_server.endpoint_url), "endpoint_urll": "http://x"}
    store = BlobStore(f"s3://{s3_bucket}/blobs", options)
    with pytest.raises(BlobStoreMisconfiguredError, match="VISIONQ_BLOB_STORAGE_OPTIONS"):
        store.check()


def test_a_store_nobody_answers_at_is_transient_and_names_the_endpoint() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = BlobStore("s3://some-bucket/blobs", s3_options(endpoint))
    with pytest.raises(BlobStoreUnavailableError) as raised:
        store.check()
    assert not raised.value.permanent
    message = str(raised.value)
    assert endpoint in message and "reachable" in message
    assert "blob directory" not in message and "free space" not in message  # not a disk


def test_a_healthy_store_passes_the_check(moto_server: MotoServer, s3_bucket: str) -> None:
    BlobStore(f"s3://{s3_bucket}/blobs", s3_options(moto_server.endpoint_url)).check()


def _start(command: str, tmp_path: Path, blob_dir: str, options: dict[str, Any]) -> str:
    """Run `visionq <command>` on the given store; it must refuse to start: its stderr."""
    env = {
        **os.environ,
        "VISIONQ_DATA_DIR": str(tmp_path),
        "VISIONQ_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "VISIONQ_BLOB_DIR": blob_dir,
        "VISIONQ_BLOB_STORAGE_OPTIONS": json.dumps(options),
        "VISIONQ_WORKER_METRICS_PORT": "0",
    }
    args = ["--port", str(free_port())] if command == "api" else ["--concurrency", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "visionq.cli", command, *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0, (done.stdout, done.stderr)
    return done.stderr


@pytest.mark.parametrize("command", ["api", "worker"])
def test_visionq_refuses_to_start_on_a_store_it_cannot_use(
    command: str, moto_server: MotoServer, s3_bucket: str, tmp_path: Path
) -> None:
    good = s3_options(moto_server.endpoint_url)
    missing = _start(command, tmp_path, "s3://no-such-bucket/p", good)
    assert "no such bucket" in missing and "VISIONQ_BLOB_DIR" in missing
    misspelt = _start(command, tmp_path, f"s3://{s3_bucket}/p", {**good, "endpoint_urll": "x"})
    assert "endpoint_urll" in misspelt and "VISIONQ_BLOB_STORAGE_OPTIONS" in misspelt
    nobody = f"http://127.0.0.1:{free_port()}"
    down = _start(command, tmp_path, f"s3://{s3_bucket}/p", s3_options(nobody))
    assert nobody in down and "reachable" in down


def test_a_submit_to_a_missing_bucket_is_a_503_without_retry_after(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    # Retrying can never store the image: the client is not told to (no Retry-After).
    with (
        redis_server(tmp_path / "redis") as redis_url,
        in_process_api(
            tmp_path, redis_url, ("acme",), blob_dir="s3://no-such-bucket/blobs",
            blob_storage_options=s3_options(moto_server.endpoint_url),
        ) as api,
        api.client() as client,
    ):  # fmt: skip
        image, _ = scene_png(5)
        answer = submit(client, image, task="caption")
        ready = client.get("/readyz")
    assert answer.status_code == 503, answer.text
    assert "retry-after" not in answer.headers
    assert "no such bucket" in answer.json()["error"]["message"]
    assert ready.status_code == 503
    assert "no such bucket" in ready.json()["checks"]["blob_store"]
