"""The budget of batch-lane jobs sent back to the sync lane: their holds were made at the
batch price (half of standard); when their Gemini batch FAILS (the emulator's
``--batch-fail`` fault) and their deadline leaves no time for another batch, they run at
standard. Each first holds the price difference against the tenant's budget; those the
budget cannot take fail ``budget_exceeded`` (saying what to do), so the tenant's spend
never passes its budget, and every job ends. SQLite and PostgreSQL, each on a database and
an emulator of its own (another stack's lane would gather its jobs).
"""

from __future__ import annotations

import time
from base64 import b64encode
from collections.abc import Iterator
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.integration.conftest import Stack, batch_lane_stack
from tests.integration.helpers import TERMINAL, own_tenant, scene_png
from visionq.models.budgets import budget_state, set_budget
from visionq.models.db import make_engine, make_session_factory
from visionq.models.tables import ATTEMPTS, JOBS

pytestmark = pytest.mark.integration

MODEL = "gemini-3.8-flash"
JOBS_N = 12
# A deadline no new Gemini batch can meet (the batch prior is 24 h): a failed batch's jobs
# go to the sync lane, at standard.
OPTIONS = {"tier": "batch", "deadline_s": 3600, "cache": False, "max_output_tokens": 64}


@pytest.fixture(scope="module")
def fail_stack(
    workdir: Path, database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """API, its own emulator (every Gemini batch ends FAILED) and database; the worker is
    started by the test once every job is queued."""
    stack = batch_lane_stack(
        "batch-budget", tmp_path_factory, database_url, redis_url, tenant=None,
        settings={
            "VISIONQ_BATCH_MIN_REQUESTS": str(JOBS_N),
            "VISIONQ_BATCH_MAX_REQUESTS": str(JOBS_N),
        },
        emulator_flags=["--batch-pending-s", "0.3", "--batch-fail", "100"],
    )  # fmt: skip
    yield stack
    stack.stop()


def _nusd(usd: str) -> int:
    return int((Decimal(usd) * 1_000_000_000).to_integral_value(rounding=ROUND_CEILING))


def _hold(client: httpx.Client, image: bytes, tier: str) -> int:
    """The budget hold (the estimate's maximum) of a job of ``image`` at ``tier``."""
    body = {
        "task": "caption", "model": MODEL, "images": [{"data": b64encode(image).decode()}],
        "options": {**OPTIONS, "tier": tier},
    }  # fmt: skip
    estimate = client.post("/v1/estimate", json=body).raise_for_status().json()
    return _nusd(estimate["cost_usd"]["max"])


def _set_budget(database_url: str, tenant: str, daily_nusd: int) -> None:
    engine = make_engine(database_url, pool_size=1)
    with make_session_factory(engine).begin() as session:
        set_budget(session, tenant=tenant, daily_nusd=daily_nusd, monthly_nusd=None)
    engine.dispose()


def test_jobs_sent_back_from_a_failed_batch_hold_the_standard_price(fail_stack: Stack) -> None:
    database_url = fail_stack.env["VISIONQ_DATABASE_URL"]
    tenant = "batch-budget"
    images = [scene_png(4400 + n, width=1024, height=1024)[0] for n in range(JOBS_N)]
    _set_budget(database_url, tenant, daily_nusd=10**12)
    with own_tenant(database_url, fail_stack.api_url, tenant) as client:
        batch_hold = _hold(client, images[0], "batch")
        standard_hold = _hold(client, images[0], "standard")
        assert standard_hold > batch_hold > 0
        # Every batch hold fits, and the standard price of about a third of the jobs.
        budget = JOBS_N * batch_hold + (JOBS_N // 3) * (standard_hold - batch_hold)
        _set_budget(database_url, tenant, daily_nusd=budget)
        ids = []
        for image in images:
            body = {"task": "caption", "model": MODEL, "options": OPTIONS,
                    "images": [{"data": b64encode(image).decode()}]}  # fmt: skip
            response = client.post("/v1/jobs", json=body)
            assert response.status_code == 202, response.text
            assert response.json()["lane"] == "batch"
            ids.append(response.json()["id"])
        fail_stack.start_worker(concurrency=2)
        jobs = _wait_all(client, ids, database_url, tenant, budget)

    by_status: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        by_status.setdefault(job["status"], []).append(job)
    assert set(by_status) <= {"succeeded", "failed"}, {k: len(v) for k, v in by_status.items()}
    refused = by_status.get("failed", [])
    assert refused, "no job was refused: the standard price difference was not held"
    for job in refused:
        assert job["error"]["code"] == "budget_exceeded", job["error"]
        assert "Raise the budget" in job["error"]["message"]
    for job in by_status.get("succeeded", []):
        assert job["served_tier"] == "standard"
        assert any(w["code"] == "batch_fallback" for w in job["warnings"])

    engine = make_engine(database_url, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            state = budget_state(session, tenant)
            rows = session.execute(select(JOBS).where(JOBS.c.id.in_(ids))).all()
            attempts = session.execute(select(ATTEMPTS).where(ATTEMPTS.c.job_id.in_(ids))).all()
    finally:
        engine.dispose()
    assert state.spent_day_nusd <= budget
    assert state.reserved_nusd == 0
    assert state.spent_day_nusd == sum(row.cost_nusd or 0 for row in rows)
    refused_ids = {job["id"] for job in refused}
    for attempt in attempts:
        if attempt.gemini_batch_id is not None:  # the failed batch's attempt: closed
            assert attempt.outcome in ("failed", "lost"), attempt
        elif attempt.job_id in refused_ids:  # the sync run's, refused before any call
            assert attempt.outcome == "failed" and attempt.error_class == "BudgetExceeded"
            assert attempt.requested_tier == "standard"  # the tier its run was to ask
            assert attempt.cost_nusd is None
    print(f"batch hold {batch_hold} standard hold {standard_hold} budget {budget} "
          f"spent {state.spent_day_nusd} refused {len(refused)}/{JOBS_N}")  # fmt: skip


def _wait_all(
    client: httpx.Client, ids: list[str], database_url: str, tenant: str, budget: int
) -> list[dict[str, Any]]:
    """Every job's end; meanwhile the tenant's spend never passes its budget."""
    deadline = time.monotonic() + 120
    pending = set(ids)
    done: dict[str, dict[str, Any]] = {}
    engine = make_engine(database_url, pool_size=1)
    try:
        while pending:
            assert time.monotonic() < deadline, f"{len(pending)} jobs not done in 120 s"
            for job_id in list(pending):
                job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
                if job["status"] in TERMINAL:
                    done[job_id] = job
                    pending.discard(job_id)
            with make_session_factory(engine)() as session:
                spent = budget_state(session, tenant).spent_day_nusd
            assert spent <= budget, f"spent {spent} nUSD past the budget of {budget}"
            time.sleep(0.5)
    finally:
        engine.dispose()
    return [done[job_id] for job_id in ids]
