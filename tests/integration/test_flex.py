"""Flex and priority on the sync lane, against the emulator (its own shed and downgrade
faults decide, visionq reads only what Gemini answers): a flex job Gemini keeps shedding
falls back to standard, recorded on its attempts and billed at standard; a flex answer is
billed at the flex price; a priority call served at standard is billed at standard, with a
warning. SQLite and PostgreSQL (the ``stack`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack
from tests.integration.helpers import run_job, scene_png

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
