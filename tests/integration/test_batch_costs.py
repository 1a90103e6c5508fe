"""Every answer Gemini bills is counted in the job's cost and its tenant's spend, whichever
lane it ran in (the real stack: API, worker with its batch lane, emulator; SQLite and
PostgreSQL, each on a database and an emulator of its own).

- A batch line whose thoughts used visionq's own output cap is released to the sync lane,
  answered there with the cap raised: the job's cost is the batch line's plus the standard
  call's (review bug 1: it was the standard call's only).
- A batch line cut at a max_output_tokens the user set fails at once with the sync lane's
  code: the sync lane never raises that cap, so a second, standard-price call would be paid
  for the same cut (review bug 2).
- A batch that stalls with lines pending (answered slower than VISIONQ_BATCH_STALL_S) is
  cancelled; the lines it had answered are stored from its output, only the rest re-sent,
  so no line is paid twice (review bug 6).

The emulator is the witness: what it billed equals what visionq recorded, job by job summed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.integration.conftest import Stack, batch_lane_stack
from tests.integration.helpers import scene_png, submit, wait_all
from visionq.models.db import make_engine
from visionq.models.tables import ATTEMPTS, BUDGETS, JOBS
from visionq.worker.thinking import CUT_IN_BATCH

pytestmark = pytest.mark.integration

MODEL = "gemini-3.8-flash"
PER_KIND = 3


@pytest.fixture(scope="module")
def cost_stack(
    workdir: Path, database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """API, its own emulator and database; the worker is started by the test."""
    stack = batch_lane_stack(
        "batch-costs", tmp_path_factory, database_url, redis_url,
        settings={
            "VISIONQ_BATCH_MIN_REQUESTS": str(2 * PER_KIND),
            "VISIONQ_BATCH_MAX_REQUESTS": str(2 * PER_KIND),
            "VISIONQ_BATCH_STALL_S": "3",
        },
        emulator_flags=[
            "--batch-pending-s", "0.3", "--batch-lines-per-s", "0", "--file-processing-s", "0"
        ],
    )  # fmt: skip
    yield stack
    stack.stop()


def _worker(stack: Stack) -> None:
    if stack.worker is None:
        stack.start_worker(concurrency=2)


def _billed(stack: Stack) -> tuple[float, int]:
    stats = httpx.get(f"{stack.env['VISIONQ_GEMINI_BASE_URL']}/_emulator/stats").json()
    return sum(stats["billed_usd_by_tier"].values()), int(stats["batch_lines_answered"])


def _rows(stack: Stack, ids: list[str]) -> tuple[dict[str, Any], dict[str, list[Any]], int]:
    engine = make_engine(stack.env["VISIONQ_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            jobs = connection.execute(select(JOBS).where(JOBS.c.id.in_(ids))).all()
            attempts = connection.execute(
                select(ATTEMPTS).where(ATTEMPTS.c.job_id.in_(ids)).order_by(ATTEMPTS.c.id)
            ).all()
            spent = connection.execute(
                select(BUDGETS.c.spent_day_nusd).where(BUDGETS.c.tenant == "acme")
            ).scalar()
    finally:
        engine.dispose()
    of: dict[str, list[Any]] = {}
    for attempt in attempts:
        of.setdefault(attempt.job_id, []).append(attempt)
    return {job.id: job for job in jobs}, of, int(spent or 0)


def test_every_billed_batch_line_counts_in_the_jobs_cost(cost_stack: Stack) -> None:
    base = cost_stack.env["VISIONQ_GEMINI_BASE_URL"]
    # Thoughts past visionq's own cap for a caption (1,280 here), within its raised cap: the
    # batch line is billed with no answer; the sync lane asks at the raised cap and answers.
    httpx.post(f"{base}/_emulator/faults", json={"thoughts_tokens": 1500}).raise_for_status()
    batch_options = {"tier": "batch", "deadline_s": 7200, "cache": False}
    ids: dict[str, list[str]] = {"own_cap": [], "user_cap": []}
    with cost_stack.client() as client:
        for n in range(2 * PER_KIND):
            kind = "own_cap" if n < PER_KIND else "user_cap"
            options = dict(batch_options)
            if kind == "user_cap":
                options["max_output_tokens"] = 3
            image, _ = scene_png(9100 + n)
            response = submit(client, image, task="caption", model=MODEL, options=options)
            assert response.status_code == 202, response.text
            assert response.json()["lane"] == "batch"
            ids[kind].append(response.json()["id"])
        _worker(cost_stack)
        done = wait_all(client, ids["own_cap"] + ids["user_cap"], timeout=180)
    by_id = {job["id"]: job for job in done}
    jobs, attempts, spent = _rows(cost_stack, ids["own_cap"] + ids["user_cap"])

    for job_id in ids["own_cap"]:
        assert by_id[job_id]["status"] == "succeeded", by_id[job_id]["error"]
        tries = attempts[job_id]
        assert (tries[0].served_tier, tries[0].error_class) == ("batch", CUT_IN_BATCH)
        # The sync run starts at the raised cap: no standard call at the cap just cut.
        assert [(a.served_tier, a.outcome) for a in tries[1:]] == [("standard", "succeeded")]
        assert all(a.cost_nusd for a in tries)
        assert jobs[job_id].cost_nusd == sum(a.cost_nusd for a in tries)
    for job_id in ids["user_cap"]:
        job = by_id[job_id]
        assert job["status"] == "failed", job
        assert job["error"]["code"] in ("answer_truncated", "max_tokens_exhausted"), job
        [only] = attempts[job_id]  # no standard call paid for the same cut
        assert only.served_tier == "batch" and only.cost_nusd
        assert jobs[job_id].cost_nusd == only.cost_nusd

    recorded = sum(job.cost_nusd for job in jobs.values())
    assert spent == recorded
    stats = httpx.get(f"{base}/_emulator/stats").json()
    billed = sum(stats["billed_usd_by_tier"].values())
    calls = sum(len(tries) for tries in attempts.values())
    assert abs(billed * 1e9 - recorded) <= calls, (billed, recorded)


def test_a_stalled_batch_keeps_what_it_answered(cost_stack: Stack) -> None:
    base = cost_stack.env["VISIONQ_GEMINI_BASE_URL"]
    # A line every 4 s: no progress for 3 s with lines pending, so each batch stalls.
    faults = {"thoughts_tokens": None, "batch_lines_per_s": 0.25}
    httpx.post(f"{base}/_emulator/faults", json=faults).raise_for_status()
    billed_before, lines_before = _billed(cost_stack)
    spent_before = _rows(cost_stack, [])[2]
    options = {"tier": "batch", "deadline_s": 7200, "cache": False}
    ids = []
    try:
        with cost_stack.client() as client:
            for n in range(2 * PER_KIND):
                image, _ = scene_png(9300 + n)
                response = submit(client, image, task="caption", model=MODEL, options=options)
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
            _worker(cost_stack)
            done = wait_all(client, ids, timeout=240)
    finally:
        httpx.post(f"{base}/_emulator/faults", json={"batch_lines_per_s": 0}).raise_for_status()
    assert {job["status"] for job in done} == {"succeeded"}, [job["error"] for job in done]
    jobs, attempts, spent = _rows(cost_stack, ids)
    tries = [a for job_id in ids for a in attempts[job_id]]
    assert any(a.error_class == "BatchStalled" for a in tries), tries
    billed, lines = _billed(cost_stack)
    answered = lines - lines_before
    # Every line Gemini answered was stored or recorded once: none answered twice for a job.
    paid_batch = [a for a in tries if a.served_tier == "batch" and a.cost_nusd]
    assert len(paid_batch) == answered > 0, (answered, paid_batch)
    assert all(sum(1 for a in attempts[j] if a.outcome == "succeeded") == 1 for j in ids)
    assert any(job["served_tier"] == "batch" for job in done)  # kept from a stalled batch
    recorded = sum(job.cost_nusd for job in jobs.values())
    for job_id in ids:
        assert jobs[job_id].cost_nusd == sum(a.cost_nusd or 0 for a in attempts[job_id])
    assert spent - spent_before == recorded
    assert abs((billed - billed_before) * 1e9 - recorded) <= len(tries), (billed, recorded)
