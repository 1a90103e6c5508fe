"""Batches under faults (issue 19), on SQLite and PostgreSQL: items added while Redis is down
are stored and sent by the sweeper once it is back; items that all failed (Gemini refusing
every call) succeed when re-run, their old jobs kept."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.faults.conftest import report
from tests.faults.stack import FaultStack
from tests.integration.helpers import scene_png
from tests.services import postgres_bindir, postgres_server, visionq_command
from visionq.models.blobs import TEMPORARY_SUFFIX

pytestmark = pytest.mark.faults
N = 100
CHUNK = 50


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL server binaries not installed")
    with postgres_server() as url:
        yield url


def _unsent(stack: FaultStack) -> int:
    assert stack.engine is not None
    with stack.engine.connect() as connection:
        query = text("SELECT count(*) FROM jobs WHERE enqueued_at IS NULL")
        return int(connection.execute(query).scalar_one())


def _chunk_enqueued_during_redis_outage(stack: FaultStack, backend: str) -> None:
    """Redis is killed, then N items are added in chunks: every call answers 200 with its
    items created (stored, marked unsent: none is lost, none waits for the requeue delay);
    Redis comes back and the sweeper sends them: each runs exactly once."""
    stack.start_worker(concurrency=16)
    images = [base64.b64encode(scene_png(i, 96, 96, 1)[0]).decode() for i in range(N)]
    with stack.client() as client:
        created = client.post(
            "/v1/batches",
            json={"name": "outage", "task": "caption", "options": {"cache": False}},
        )
        assert created.status_code == 201, created.text
        batch_id = created.json()["id"]
        assert stack.redis is not None
        stack.redis.kill()
        statuses = []
        for start in range(0, N, CHUNK):
            items = [
                {"key": f"img{i}.png", "images": [{"data": images[i]}]}
                for i in range(start, start + CHUNK)
            ]
            response = client.post(f"/v1/batches/{batch_id}/items", json={"items": items})
            statuses.append(response.status_code)
            assert response.status_code == 200, response.text
            assert response.json()["created"] == CHUNK
        assert stack.counts() == {"queued": N}
        assert _unsent(stack) == N
        stack.redis.start()
    took = stack.wait_all_terminal(N, timeout=120)
    audit = stack.audit()
    audit.check_exactly_once()
    assert audit.by_status() == {"succeeded": N}, audit.by_status()
    blobs = Path(stack.env["VISIONQ_BLOB_DIR"])
    assert not list(blobs.rglob(f"*{TEMPORARY_SUFFIX}"))
    ok_calls = stack.emulator_stats()["answered_ok"]
    report(
        f"batch add during redis outage ({backend})",
        audit.figures(gemini_ok_calls=ok_calls, add_statuses=statuses,
                      seconds_to_finish_after_redis_back=round(took, 1)),
    )  # fmt: skip


def test_chunk_enqueued_during_redis_outage(make_stack: Callable[..., FaultStack]) -> None:
    _chunk_enqueued_during_redis_outage(make_stack(), "sqlite")


def test_chunk_enqueued_during_redis_outage_on_postgresql(
    make_stack: Callable[..., FaultStack], postgres_url: str
) -> None:
    _chunk_enqueued_during_redis_outage(make_stack(postgres_url), "postgresql")


def _items(client: httpx.Client, batch_id: str) -> dict[str, dict[str, Any]]:
    """The batch's items by key (every page)."""
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"/v1/batches/{batch_id}/items", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        found.update((item["key"], item) for item in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return found


def _rerun_after_faults(stack: FaultStack, backend: str) -> None:
    """Gemini refuses every call (400, not retryable): all N items fail at their first
    attempt. Faults off, `visionq batch rerun` gives each a new job (retry_of = the old
    one) and all succeed; the old jobs and their attempts stay as they were."""
    stack.start_worker(concurrency=16)
    stack.set_faults(always_fail=400)
    images = [base64.b64encode(scene_png(i, 96, 96, 1)[0]).decode() for i in range(N)]
    with stack.client() as client:
        created = client.post(
            "/v1/batches",
            json={"name": "refused", "task": "caption", "options": {"cache": False}},
        )
        assert created.status_code == 201, created.text
        batch_id = created.json()["id"]
        for start in range(0, N, CHUNK):
            items = [
                {"key": f"img{i}.png", "images": [{"data": images[i]}]}
                for i in range(start, start + CHUNK)
            ]
            response = client.post(f"/v1/batches/{batch_id}/items", json={"items": items})
            assert response.status_code == 200, response.text
            assert response.json()["created"] == CHUNK
        stack.wait_all_terminal(N, timeout=60)
        failed = stack.audit()
        failed.check_exactly_once()
        assert failed.by_status() == {"failed": N}, failed.by_status()
        assert {job["error_code"] for job in failed.jobs} == {"gemini_invalid_argument"}
        before = _items(client, batch_id)
        assert {item["status"] for item in before.values()} == {"failed"}
        old_attempts = sorted(map(repr, failed.attempts))

        stack.set_faults(always_fail=None)
        env = dict(stack.env, VISIONQ_URL=stack.api_url, VISIONQ_API_KEY=stack.key)
        started = time.monotonic()
        rerun = subprocess.run(
            visionq_command("batch", "rerun", "refused"),
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr
        assert f"{N} item(s) of batch refused re-run" in rerun.stdout, rerun.stdout
        stack.wait_all_terminal(2 * N, timeout=60)
        took = time.monotonic() - started
        audit = stack.audit()
        audit.check_exactly_once()
        assert audit.by_status() == {"failed": N, "succeeded": N}, audit.by_status()
        after = _items(client, batch_id)
        batch = client.get(f"/v1/batches/{batch_id}").json()
        again = client.post(f"/v1/batches/{batch_id}/rerun", json={})
        assert again.status_code == 202 and again.json()["rerun"] == 0, again.text

    # The old jobs kept their one failed attempt each, untouched.
    old_ids = {item["job_id"] for item in before.values()}
    kept = [a for a in audit.attempts if a["job_id"] in old_ids]
    assert sorted(map(repr, kept)) == old_attempts
    assert {job["status"] for job in audit.jobs if job["id"] in old_ids} == {"failed"}
    # Each item points at its new job, which retries the old one and succeeded.
    assert sorted(after) == sorted(before)
    assert stack.engine is not None
    with stack.engine.connect() as connection:
        rows = connection.execute(text("SELECT id, retry_of, status FROM jobs"))
        retry_of = {row.id: (row.retry_of, row.status) for row in rows}
    for key, item in after.items():
        assert item["reruns"] == 1 and item["status"] == "succeeded", item
        assert retry_of[item["job_id"]] == (before[key]["job_id"], "succeeded"), key
    assert batch["progress"]["counts"]["succeeded"] == N, batch["progress"]
    # No 500s, no temporary files left.
    api_log = (stack.workdir / "api.log").read_text(errors="replace")
    assert "Traceback" not in api_log and " 500 " not in api_log
    assert f'"POST /v1/batches/{batch_id}/rerun" 202 ' in api_log  # the log is the access log
    blobs = Path(stack.env["VISIONQ_BLOB_DIR"])
    assert not list(blobs.rglob(f"*{TEMPORARY_SUFFIX}"))
    report(
        f"batch rerun after faults ({backend})",
        audit.figures(gemini_ok_calls=stack.emulator_stats()["answered_ok"],
                      seconds_to_finish_rerun=round(took, 1)),
    )  # fmt: skip


def test_rerun_after_faults(make_stack: Callable[..., FaultStack]) -> None:
    _rerun_after_faults(make_stack(), "sqlite")


def test_rerun_after_faults_on_postgresql(
    make_stack: Callable[..., FaultStack], postgres_url: str
) -> None:
    _rerun_after_faults(make_stack(postgres_url), "postgresql")
