"""The Gemini Batch lane end to end (worker/batch_lane.py in the worker process): 120
``tier=batch`` jobs become two Gemini batches, one inline and one sent as a JSONL file (a
small VISIONQ_BATCH_INLINE_MAX_BYTES), and every job succeeds exactly once at the batch
price, served_tier batch, its one attempt naming its Gemini batch. SQLite and PostgreSQL,
each on a database and an emulator of its own (another stack's lane would gather its jobs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select

from tests.integration.conftest import Stack, batch_lane_stack, redis_db
from tests.integration.helpers import noise_png, submit, wait_all
from visionq.models.db import make_engine
from visionq.models.tables import ATTEMPTS, GEMINI_BATCHES, JOBS
from visionq.vision.catalogue import ServiceTier
from visionq.vision.costing import CostBook, to_nano
from visionq.worker.batch_lane import LaneLock

pytestmark = pytest.mark.integration

MODEL = "gemini-3.8-flash"
PER_BATCH = 60
# Small images keep the first batch's body under this; the second one's noisy images do not.
INLINE_MAX = 1024 * 1024


@pytest.fixture(scope="module")
def batch_stack(
    workdir: Path, database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """API, its own emulator and database; the worker is started by the test."""
    stack = batch_lane_stack(
        "batch-lane", tmp_path_factory, database_url, redis_url,
        settings={
            "VISIONQ_BATCH_MIN_REQUESTS": str(PER_BATCH),
            "VISIONQ_BATCH_MAX_REQUESTS": str(PER_BATCH),
            "VISIONQ_BATCH_INLINE_MAX_BYTES": str(INLINE_MAX),
            "VISIONQ_BATCH_FILE_IMAGE_MIN_BYTES": "8192",
        },
        emulator_flags=[
            "--batch-pending-s", "0.3", "--batch-lines-per-s", "0", "--file-processing-s", "0"
        ],
    )  # fmt: skip
    yield stack
    stack.stop()


def test_batch_jobs_go_in_two_gemini_batches_and_succeed_once(batch_stack: Stack) -> None:
    small = [noise_png(7000 + n, 24) for n in range(PER_BATCH)]  # ~2 KB
    large = [noise_png(8000 + n, 128) for n in range(PER_BATCH)]  # ~49 KB
    options = {"tier": "batch", "deadline_s": 3600}
    ids = []
    with batch_stack.client() as client:
        for image in small + large:
            response = submit(client, image, task="caption", model=MODEL, options=options)
            assert response.status_code == 202, response.text
            body = response.json()
            assert body["lane"] == "batch"
            ids.append(body["id"])
        batch_stack.start_worker(concurrency=2)
        jobs = wait_all(client, ids)
    assert [job["status"] for job in jobs] == ["succeeded"] * len(ids)
    assert {job["served_tier"] for job in jobs} == {"batch"}

    engine = make_engine(batch_stack.env["VISIONQ_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(JOBS).where(JOBS.c.id.in_(ids))).all()
            attempts = connection.execute(select(ATTEMPTS).where(ATTEMPTS.c.job_id.in_(ids))).all()
            batches = connection.execute(select(GEMINI_BATCHES)).all()
    finally:
        engine.dispose()
    # Two Gemini batches, all closed: the small images inline, the large ones as a file.
    assert sorted(b.input_mode for b in batches) == ["file", "inline"]
    assert {b.state for b in batches} == {"closed"}
    assert [b.job_count for b in batches] == [PER_BATCH, PER_BATCH]
    by_batch = {b.id: b for b in batches}
    costs = CostBook.load()
    attempts_of: dict[str, list[Any]] = {}
    for attempt in attempts:
        attempts_of.setdefault(attempt.job_id, []).append(attempt)
    for row in rows:
        [attempt] = attempts_of[row.id]  # exactly one attempt: stored once
        assert attempt.outcome == "succeeded" and attempt.gemini_batch_id in by_batch
        assert attempt.requested_tier == "batch" and attempt.served_tier == "batch"
        assert row.gemini_batch_id is None or row.gemini_batch_id == attempt.gemini_batch_id
        mode = by_batch[attempt.gemini_batch_id].input_mode
        assert mode == ("inline" if row.id in ids[:PER_BATCH] else "file")
        assert row.served_tier == "batch" and row.usage is not None
        batch_cost = costs.call_cost(MODEL, row.usage, tier=ServiceTier.BATCH)
        standard_cost = costs.call_cost(MODEL, row.usage)
        assert batch_cost is not None and standard_cost is not None
        assert row.cost_nusd == to_nano(batch_cost) == attempt.cost_nusd
        assert row.standard_cost_nusd == to_nano(standard_cost)
    # The emulator answered each line once.
    stats = httpx.get(f"{batch_stack.env['VISIONQ_GEMINI_BASE_URL']}/_emulator/stats").json()
    assert stats["batches_created"] == 2 and stats["batch_lines_answered"] == len(ids)


def test_one_lane_holds_the_lock_and_keeps_it(redis_url: str) -> None:
    """The lane lock: one holder at a time; the holder keeps it tick after tick; another
    lane takes it once the holder releases it (or it lapses)."""
    client = redis.Redis.from_url(redis_db(redis_url))
    try:
        first, second = LaneLock(client, ttl_s=5), LaneLock(client, ttl_s=5)
        assert first.acquire() and not second.acquire()
        assert first.acquire() and first.renew()  # the holder's next tick keeps it
        assert not second.renew()
        first.release()
        assert second.acquire() and not first.acquire()
        client.delete("visionq:batch-lane")
        assert first.acquire()  # lapsed (deleted here): anyone may take it
    finally:
        client.close()
