"""A hung object store (connection accepted, no answer: moto under SIGSTOP) answers a submit
with 503 and Retry-After within visionq's own deadline, and leaves no job row behind
(review of issue 23, finding 1: the submit hung 90 s, then made a job the client had given
up on). /readyz reports the store. The images are stored before the job's row
(api/submission.py::store_and_enqueue), so a store that times out leaves nothing.

moto runs as a process of this module's own (python -m moto.server) so it can be stopped
with SIGSTOP; the API runs in process on SQLite and a real Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.integration.helpers import scene_png, submit
from tests.integration.inprocess import InProcessApi, in_process_api
from tests.objectstore.conftest import require
from tests.objectstore.servers import make_bucket, s3_options
from tests.services import free_port, redis_server
from visionq.models import blobs
from visionq.models.tables import Job

pytestmark = pytest.mark.objectstore

BUCKET = "visionq-hung"
DEADLINE_S = 3.0  # visionq's whole-call deadline, shortened for the test


@pytest.fixture
def moto_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """(moto's server process, its endpoint)."""
    require("moto", "s3fs", "boto3")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with (tmp_path / "moto.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(endpoint, timeout=1)
                break
            assert time.monotonic() < deadline, "moto did not start"
            time.sleep(0.1)
        make_bucket(endpoint, BUCKET)
        yield process, endpoint
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
        process.wait()


@pytest.fixture
def api(
    tmp_path: Path,
    moto_process: tuple[subprocess.Popen[bytes], str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[InProcessApi]:
    monkeypatch.setattr(blobs, "CALL_TIMEOUT_S", DEADLINE_S)
    monkeypatch.setattr(blobs, "CHECK_TIMEOUT_S", DEADLINE_S)
    with (
        redis_server(tmp_path / "redis") as redis_url,
        in_process_api(
            tmp_path, redis_url, ("acme",),
            blob_dir=f"s3://{BUCKET}/blobs", blob_storage_options=s3_options(moto_process[1]),
        ) as running,
    ):  # fmt: skip
        yield running


def _jobs(api: InProcessApi) -> int:
    with api.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Job)).scalar_one())


def _bounded(call: Any, limit_s: float) -> Any:
    """``call()``'s result; fails if it has not answered within ``limit_s`` (a hang)."""
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(limit_s)
    assert result, f"no answer within {limit_s:g} s: the hung store hangs the request"
    return result[0]


def test_a_hung_store_is_a_prompt_503_and_leaves_no_job(
    api: InProcessApi, moto_process: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, _ = moto_process
    with api.client() as client:
        first, _ = scene_png(3)
        assert submit(client, first, task="caption").status_code == 202
        assert _jobs(api) == 1
        assert client.get("/readyz").json()["checks"]["blob_store"] == "ok"
        os.kill(process.pid, signal.SIGSTOP)  # connections still accepted, never answered
        image, _ = scene_png(4)
        # Generous: without a deadline the submit waits as long as the store is stopped.
        answer = _bounded(lambda: submit(client, image, task="caption"), 10 * DEADLINE_S)
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["Retry-After"]) > 0
        assert answer.json()["error"]["code"] == "unavailable"
        message = answer.json()["error"]["message"]
        assert "object store" in message and "nothing was stored" in message
        assert "timed out" in message
        assert _jobs(api) == 1  # no row for the refused submit
        ready = _bounded(lambda: client.get("/readyz"), 10 * DEADLINE_S)
        assert ready.status_code == 503
        assert ready.json()["checks"]["blob_store"].startswith("error: The object store at")
        os.kill(process.pid, signal.SIGCONT)
        again = submit(client, image, task="caption")
        assert again.status_code == 202, again.text
    assert _jobs(api) == 2  # the late answers of the stopped store made no job either
