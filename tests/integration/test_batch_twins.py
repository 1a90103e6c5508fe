"""Identical jobs in the Gemini Batch lane (review gap 2), SQLite and PostgreSQL.

On the real stack (API, worker, its own database and emulator): 20 ``tier=batch`` jobs,
10 images each submitted twice at once. The emulator answers 10 batch lines; the 10 repeats
end as cache hits of their first copy (cost 0, no attempt), every job with one result.
Without coalescing every repeat is gathered into the batch too (the cache is read only at
admission, when the first copy has no answer yet): 20 lines paid.

And the database layer: the gather's "uses the cache" rule reads the stored options on
both databases (``cache`` is stored only when false).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.integration.conftest import Stack, batch_lane_stack
from tests.integration.helpers import noise_png, submit, wait_all
from tests.integration.test_migration_race import empty_database
from visionq.models.batch_twins import answer_from_twins
from visionq.models.db import make_engine, make_session_factory
from visionq.models.gemini_batches import gatherable
from visionq.models.jobs import NewInput, create_job
from visionq.models.migrate import upgrade
from visionq.models.tables import ATTEMPTS, JOBS
from visionq.vision.tasks import JobOptions

pytestmark = pytest.mark.integration

MODEL = "gemini-3.8-flash"
IMAGES = 10


@pytest.fixture(scope="module")
def twin_stack(
    workdir: Path, database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """API, its own emulator and database; the worker is started by the test."""
    stack = batch_lane_stack(
        "batch-twins", tmp_path_factory, database_url, redis_url,
        settings={
            "VISIONQ_BATCH_MIN_REQUESTS": str(IMAGES),
        },
        emulator_flags=["--batch-pending-s", "0.3", "--batch-lines-per-s", "0"],
    )  # fmt: skip
    yield stack
    stack.stop()


def test_repeats_in_the_batch_lane_are_answered_from_their_first_copy(
    twin_stack: Stack,
) -> None:
    options = {"tier": "batch", "deadline_s": 7200}
    images = [noise_png(9100 + n, 16) for n in range(IMAGES)]
    with twin_stack.client() as client, ThreadPoolExecutor(2) as pool:

        def send(image: bytes) -> str:
            response = submit(client, image, task="caption", model=MODEL, options=options)
            assert response.status_code == 202, response.text
            assert response.json()["lane"] == "batch"
            return str(response.json()["id"])

        # Each image twice at once: neither copy finds the other's answer at admission.
        pairs = [list(pool.map(send, [image, image])) for image in images]
        ids = [job_id for pair in pairs for job_id in pair]
        twin_stack.start_worker(concurrency=2)
        jobs = {job["id"]: job for job in wait_all(client, ids)}
    assert {job["status"] for job in jobs.values()} == {"succeeded"}

    engine = make_engine(twin_stack.env["VISIONQ_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            rows = {r.id: r for r in connection.execute(select(JOBS).where(JOBS.c.id.in_(ids)))}
            attempts = connection.execute(select(ATTEMPTS).where(ATTEMPTS.c.job_id.in_(ids))).all()
    finally:
        engine.dispose()
    attempts_of: dict[str, list[Any]] = {}
    for attempt in attempts:
        attempts_of.setdefault(attempt.job_id, []).append(attempt)
    for pair in pairs:
        sent = [job_id for job_id in pair if rows[job_id].cached_from is None]
        assert len(sent) == 1, "exactly one copy of each image goes in a Gemini batch"
        [first] = sent
        [repeat] = [job_id for job_id in pair if job_id != first]
        [attempt] = attempts_of[first]
        assert attempt.outcome == "succeeded" and attempt.served_tier == "batch"
        assert rows[first].cost_nusd == attempt.cost_nusd > 0
        hit = rows[repeat]
        # As an admission cache hit: the first copy's result, free, no attempt.
        assert hit.cached_from == first and hit.result == rows[first].result is not None
        assert hit.cost_nusd == 0 and hit.attempt_count == 0 and repeat not in attempts_of
        assert jobs[repeat]["cached_from"] == first and jobs[repeat]["cost_usd"] == "0"
    stats = httpx.get(f"{twin_stack.env['VISIONQ_GEMINI_BASE_URL']}/_emulator/stats").json()
    assert stats["batch_lines_answered"] == IMAGES


def test_the_gather_reads_the_cache_option_on_this_database(
    database_url: str, tmp_path: Path
) -> None:
    """A repeat with ``cache: false`` is gathered beside its first copy (it asked to run),
    and is not answered from it; a repeat allowing the cache waits, then is."""
    url = empty_database(database_url, tmp_path)
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    try:

        def job(cache: bool) -> str:
            with sessions.begin() as session:
                made = create_job(
                    session, tenant="t", task="caption", model=MODEL, prompt=None,
                    labels=None, options=JobOptions(cache=cache),
                    inputs=[NewInput("a" * 64, "image/png", 8, 8, 10)], tier="batch",
                    lane="batch", deadline_s=7200, cache_key="k" * 64,
                )  # fmt: skip
                return made.id

        first, no_cache, repeat = job(True), job(False), job(True)
        with sessions() as session:
            assert gatherable(session, model=MODEL, limit=10) == [first, no_cache]
        with sessions.begin() as session:
            session.execute(
                JOBS.update().where(JOBS.c.id.in_([first, no_cache]))
                .values(status="succeeded", result={"text": "A"}, finished_at=JOBS.c.created_at)
            )  # fmt: skip
        with sessions.begin() as session:
            assert [job.id for job in answer_from_twins(session)] == [repeat]
    finally:
        engine.dispose()
