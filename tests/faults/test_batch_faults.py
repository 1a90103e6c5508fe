"""Batches under faults (issue 19): items added while Redis is down are stored and sent by
the sweeper once it is back, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.faults.conftest import report
from tests.faults.stack import FaultStack
from tests.integration.helpers import scene_png
from tests.services import postgres_bindir, postgres_server
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
