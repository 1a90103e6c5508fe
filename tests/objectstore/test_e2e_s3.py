"""Jobs through the real stack (API, Celery worker, emulator, Redis, SQLite) with every blob in
S3 (moto): inputs and masks land in the bucket and are served from it; a store that fails
answers 503 at submit and loses no paid answer in the worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import REDIS_DATABASES, Stack, _build_stack, _start_emulator
from tests.integration.helpers import scene_png, submit, wait_done
from tests.objectstore.conftest import require
from tests.objectstore.servers import (
    MotoServer,
    make_bucket,
    s3_client,
    s3_settings_env,
    start_moto,
)
from tests.services import redis_server

pytestmark = pytest.mark.objectstore

BUCKET = "visionq-e2e"
PREFIX = "blobs"


class Store:
    """The stack's own moto server, which a test may stop and start again on its port
    (moto keeps its buckets in this process, so they outlive a restart)."""

    def __init__(self) -> None:
        self.server: MotoServer | None = start_moto()
        self.port = self.server.port
        self.endpoint_url = self.server.endpoint_url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def start(self) -> None:
        if self.server is None:
            self.server = start_moto(port=self.port)

    def keys(self) -> set[str]:
        listed = s3_client(self.endpoint_url).list_objects_v2(Bucket=BUCKET)
        return {item["Key"] for item in listed.get("Contents", [])}

    def object(self, sha256: str) -> bytes:
        got = s3_client(self.endpoint_url).get_object(Bucket=BUCKET, Key=key_of(sha256))
        data: bytes = got["Body"].read()
        return data


def _emulator_stats(stack: Stack) -> dict[str, Any]:
    stats: dict[str, Any] = (
        httpx.get(f"{stack.env['EMULATOR_URL']}/_emulator/stats", timeout=10)
        .raise_for_status()
        .json()
    )
    return stats


def _wait_for(stack: Stack, counter: str, value: int, timeout: float = 60) -> None:
    """Until the emulator's ``counter`` reaches ``value`` (it never passes it here)."""
    deadline = time.monotonic() + timeout
    while (seen := _emulator_stats(stack)[counter]) < value:
        assert time.monotonic() < deadline, f"emulator {counter} stayed at {seen} < {value}"
        time.sleep(0.02)
    assert seen == value, f"emulator {counter} is {seen}, expected {value}"


def _wait_for_log(stack: Stack, line: str, timeout: float = 60) -> None:
    """Until a worker's log holds ``line``."""
    deadline = time.monotonic() + timeout
    while not any(line in log.read_text() for log in stack.workdir.glob("*worker*.log")):
        assert time.monotonic() < deadline, f"no worker log line {line!r}"
        time.sleep(0.05)


def key_of(sha256: str) -> str:
    return f"{PREFIX}/{sha256[:2]}/{sha256}"


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    require("moto", "s3fs", "boto3")
    running = Store()
    make_bucket(running.endpoint_url, BUCKET)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def s3_stack(tmp_path_factory: pytest.TempPathFactory, store: Store) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("s3-stack")
    # As many databases as the session's Redis: _build_stack takes the session's next
    # database number (past 16 in a full run).
    with redis_server(workdir / "redis", databases=REDIS_DATABASES) as redis_url:
        # 1.5 s per answer: long enough to take the store away while a call is in flight.
        emulator, emulator_url = _start_emulator(workdir, "s3-emulator", "--latency-ms", "1500")
        env = {
            **s3_settings_env(store.endpoint_url, BUCKET, PREFIX),
            # A job deferred by a store fault before its call is delivered again quickly.
            "VISIONQ_LEASE_S": "3",
            "VISIONQ_SWEEP_INTERVAL_S": "1",
        }
        try:
            stack = _build_stack(
                "s3", workdir, f"sqlite:///{workdir / 'visionq.db'}", redis_url,
                emulator_url, with_worker=True, extra_env=env,
            )  # fmt: skip
        except BaseException:
            emulator.stop()  # its process would outlive a stack that failed to start
            raise
        stack.env["EMULATOR_URL"] = emulator_url  # for its stats (the witness)
        try:
            yield stack
        finally:
            stack.stop()
            emulator.stop()


def test_inputs_and_masks_live_in_the_bucket_and_are_served_from_it(
    s3_stack: Stack, store: Store
) -> None:
    image, _ = scene_png(7)
    with s3_stack.client() as client:
        detect = submit(client, image, task="detect")
        segment = submit(client, image, task="segment")
        assert detect.status_code == 202 and segment.status_code == 202, segment.text
        jobs = [wait_done(client, response.json()["id"]) for response in (detect, segment)]
        assert [job["status"] for job in jobs] == ["succeeded", "succeeded"], jobs
        segmented = jobs[1]
        input_sha = segmented["inputs"][0]["sha256"]
        masks = [obj["mask_sha256"] for obj in segmented["result"]["objects"]]
        assert masks, segmented["result"]
        keys = store.keys()
        assert {key_of(sha) for sha in [input_sha, *masks]} <= keys
        # One PutObject per blob: nothing but blobs in the bucket (no temporary keys).
        assert not [key for key in keys if key.endswith(".tmp")]
        mask = client.get(segmented["result"]["objects"][0]["mask_url"])
        assert mask.status_code == 200, mask.text
        assert mask.headers["content-type"] == "image/png"
        assert mask.content == store.object(masks[0])
        assert mask.headers["content-length"] == str(len(mask.content))
        shown = client.get(f"/v1/jobs/{segmented['id']}/images/0")
        assert shown.status_code == 200 and shown.content == store.object(input_sha)
        annotated = client.get(f"/v1/jobs/{segmented['id']}/annotated.png")
        assert annotated.status_code == 200
        # The store down: a mask is read whole before its answer starts, so it is a 503 in
        # the one error shape, never a 200 cut short.
        store.stop()
        try:
            down = client.get(segmented["result"]["objects"][0]["mask_url"])
        finally:
            store.start()
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "unavailable"
        # A mask gone from the bucket (retention, or removed by hand): 410, not a 500.
        s3_client(store.endpoint_url).delete_object(Bucket=BUCKET, Key=key_of(masks[0]))
        for path in (segmented["result"]["objects"][0]["mask_url"], annotated.url.path):
            gone = client.get(path)
            assert gone.status_code == 410, (path, gone.text)
            assert gone.json()["error"]["code"] == "job_inputs_gone"
    # Nothing of the blobs on the local disk of the API or the worker.
    assert not (s3_stack.workdir / "blobs").exists()
    assert not list(Path(s3_stack.workdir).rglob("*.tmp"))


def test_a_failing_store_refuses_submits_and_loses_no_paid_answer(
    s3_stack: Stack, store: Store
) -> None:
    image, _ = scene_png(8)
    other, _ = scene_png(9)
    with s3_stack.client() as client:
        before = client.get("/v1/jobs").raise_for_status().json()
        store.stop()
        try:
            refused = submit(client, other, task="detect")
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "unavailable"
            assert "Retry-After" in refused.headers
        finally:
            store.start()
        after = client.get("/v1/jobs").raise_for_status().json()
        assert len(after["jobs"]) == len(before["jobs"])  # nothing half-accepted

        # The store fails while the worker waits for Gemini's answer: the masks cannot be
        # stored, the paid answer is kept and stored once the store is back. The emulator
        # (the witness) says when its call arrived and was answered: the store is stopped
        # only once the call is in flight (so the input was read), and started again only
        # after the answer went out, so the path under test is the one that ran.
        calls = _emulator_stats(s3_stack)
        response = submit(client, image, task="segment")
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        _wait_for(s3_stack, "generate_calls", calls["generate_calls"] + 1)
        store.stop()
        try:
            _wait_for(s3_stack, "answered_ok", calls["answered_ok"] + 1)
            _wait_for_log(s3_stack, f"job {job_id}: storing its answer failed")
        finally:
            store.start()
        job = wait_done(client, job_id, timeout=60)
        assert job["status"] == "succeeded", job["error"]
        # Bought once: the answer was kept through the fault, not bought again on a rerun.
        assert _emulator_stats(s3_stack)["generate_calls"] == calls["generate_calls"] + 1
        masks = [obj["mask_sha256"] for obj in job["result"]["objects"]]
        assert {key_of(sha) for sha in masks} <= store.keys()
        assert client.get(job["result"]["objects"][0]["mask_url"]).status_code == 200
