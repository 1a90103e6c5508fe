"""Flex and priority on the sync lane, against the emulator (its own shed and downgrade
faults decide, visionq reads only what Gemini answers): a flex job Gemini keeps shedding
falls back to standard, recorded on its attempts and billed at standard; a flex answer is
billed at the flex price; a priority call served at standard is billed at standard, with a
warning. SQLite and PostgreSQL (the ``stack`` fixture)."""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Iterator
from decimal import ROUND_CEILING, Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.integration.conftest import Stack
from tests.integration.helpers import own_tenant, run_job, scene_png
from visionq.models.budgets import BudgetState, budget_state, set_budget
from visionq.models.db import make_engine, make_session_factory
from visionq.models.tables import Job

pytestmark = pytest.mark.integration

MODEL = "gemini-3.8-flash"


@pytest.fixture
def faults(stack: Stack) -> Iterator[str]:
    """The emulator's runtime faults URL; the tier faults are cleared at the end."""
    url = f"{stack.env['VISIONQ_GEMINI_BASE_URL']}/_emulator/faults"
    try:
        yield url
    finally:
        httpx.post(url, json={"flex_shed_rate": 0.0, "priority_downgrade": False})


def _job(stack: Stack, seed: int, **options: Any) -> dict[str, Any]:
    image, _ = scene_png(seed)
    with stack.client() as client:
        job = run_job(client, image, task="caption", model=MODEL,
                      options={"cache": False, **options})  # fmt: skip
    assert job["status"] == "succeeded", job
    return job


def test_a_shed_flex_job_falls_back_to_standard(stack: Stack, faults: str) -> None:
    standard = _job(stack, 2101)
    httpx.post(faults, json={"flex_shed_rate": 1.0}).raise_for_status()
    # 600 s to the deadline, 300 s of it kept for standard: no room for another flex call.
    job = _job(stack, 2101, tier="flex", deadline_s=600)
    assert (job["tier"], job["lane"], job["served_tier"]) == ("flex", "flex", "standard")
    shed, answered = job["attempts"]
    assert (shed["outcome"], shed["error_class"]) == ("failed", "FlexShed")
    assert shed["http_status"] == 503
    assert (shed["requested_tier"], shed["served_tier"], shed["cost_usd"]) == ("flex", None, None)
    assert "falling back to standard to hold the deadline" in shed["error_message"]
    assert (answered["requested_tier"], answered["served_tier"]) == ("standard", "standard")
    # Billed at standard: the same call as the standard job's, at the same price.
    assert job["cost_usd"] == standard["cost_usd"] == answered["cost_usd"]
    assert job["estimate"]["tier"] == "flex"
    assert "flex_fallback" in {warning["code"] for warning in job["warnings"]}


def test_a_flex_answer_is_billed_at_the_flex_price(stack: Stack, faults: str) -> None:
    standard = _job(stack, 2102)
    job = _job(stack, 2102, tier="flex")
    assert job["served_tier"] == "flex" and len(job["attempts"]) == 1
    assert job["attempts"][0]["requested_tier"] == "flex"
    assert abs(Decimal(job["cost_usd"]) * 2 - Decimal(standard["cost_usd"])) <= Decimal("2e-9")
    assert not job["warnings"]


def test_a_downgraded_priority_call_is_billed_at_standard(stack: Stack, faults: str) -> None:
    standard = _job(stack, 2103)
    priority = _job(stack, 2103, tier="priority")
    assert priority["served_tier"] == "priority"
    assert Decimal(priority["cost_usd"]) > Decimal(standard["cost_usd"])
    httpx.post(faults, json={"priority_downgrade": True}).raise_for_status()
    job = _job(stack, 2103, tier="priority")
    assert (job["lane"], job["served_tier"]) == ("priority", "standard")
    attempt = job["attempts"][-1]
    assert (attempt["requested_tier"], attempt["served_tier"]) == ("priority", "standard")
    assert job["cost_usd"] == standard["cost_usd"]
    warning = next(w for w in job["warnings"] if w["code"] == "priority_downgraded")
    assert "billed at standard" in warning["message"]


def _nusd(usd: str) -> int:
    return int((Decimal(usd) * 1_000_000_000).to_integral_value(rounding=ROUND_CEILING))


def _budgeted_tenant(stack: Stack, tenant: str, daily_nusd: int) -> httpx.Client:
    engine = make_engine(stack.env["VISIONQ_DATABASE_URL"], pool_size=1)
    with make_session_factory(engine).begin() as session:
        set_budget(session, tenant=tenant, daily_nusd=daily_nusd, monthly_nusd=None)
    engine.dispose()
    return own_tenant(stack.env["VISIONQ_DATABASE_URL"], stack.api_url, tenant)


def _state(stack: Stack, tenant: str, job_id: str) -> tuple[BudgetState, int | None]:
    engine = make_engine(stack.env["VISIONQ_DATABASE_URL"], pool_size=1)
    with make_session_factory(engine)() as session:
        state = budget_state(session, tenant)
        standard = session.scalar(select(Job.standard_cost_nusd).where(Job.id == job_id))
    engine.dispose()
    return state, standard


def _holds(client: httpx.Client, image: bytes) -> tuple[int, int]:
    """The budget hold (the estimate's maximum) of the job at flex and at standard."""
    body = {"task": "caption", "model": MODEL, "images": [{"data": b64encode(image).decode()}]}
    holds = []
    for tier in ("flex", "standard"):
        estimate = client.post("/v1/estimate", json={**body, "options": {"tier": tier}})
        holds.append(_nusd(estimate.raise_for_status().json()["cost_usd"]["max"]))
    return holds[0], holds[1]


def test_a_fallback_holds_the_price_difference(stack: Stack, faults: str) -> None:
    image, _ = scene_png(2104)
    tenant = f"flex-budget-{stack.name}"
    with _budgeted_tenant(stack, tenant, daily_nusd=10**12) as client:
        flex_hold, standard_hold = _holds(client, image)
        assert flex_hold * 2 in range(standard_hold - 2, standard_hold + 3)
        httpx.post(faults, json={"flex_shed_rate": 1.0}).raise_for_status()
        job = run_job(client, image, task="caption", model=MODEL,
                      options={"tier": "flex", "deadline_s": 600, "cache": False})  # fmt: skip
    assert job["status"] == "succeeded" and job["served_tier"] == "standard", job
    state, standard = _state(stack, tenant, job["id"])
    # Both holds were released at the end; the day's spend is the standard-price cost.
    assert state.reserved_nusd == 0
    assert state.spent_day_nusd == _nusd(job["cost_usd"]) == standard


def test_a_fallback_the_budget_cannot_hold_fails_the_job(stack: Stack, faults: str) -> None:
    image, _ = scene_png(2105)
    tenant = f"flex-tight-{stack.name}"
    with _budgeted_tenant(stack, tenant, daily_nusd=10**12) as client:
        flex_hold, standard_hold = _holds(client, image)
    # Room for the flex hold, not for the standard one.
    with _budgeted_tenant(stack, tenant, daily_nusd=(flex_hold + standard_hold) // 2) as client:
        httpx.post(faults, json={"flex_shed_rate": 1.0}).raise_for_status()
        job = run_job(client, image, task="caption", model=MODEL,
                      options={"tier": "flex", "deadline_s": 600, "cache": False})  # fmt: skip
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "budget_exceeded"
    assert "would pass the tenant's budget" in job["error"]["message"]
    assert job["attempts"][-1]["error_class"] == "FlexShed"
    state, _ = _state(stack, tenant, job["id"])
    assert state.reserved_nusd == 0 and state.spent_day_nusd == 0


def test_the_standard_price_of_a_flex_answer_is_kept(stack: Stack, faults: str) -> None:
    standard = _job(stack, 2106)
    job = _job(stack, 2106, tier="flex")
    _, kept = _state(stack, "acme", job["id"])
    assert kept == _nusd(standard["cost_usd"])
