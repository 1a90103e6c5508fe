"""The client and service tiers (issue 20): Job and its attempts read tier, lane,
served_tier, deadline_at and each attempt's requested/served tier and Gemini batch as typed
fields; submit and estimate take tier= and deadline_s= into options."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from visionq.client.api import VisionqClient
from visionq.client.inputs import tier_options
from visionq.client.models import Job

JOB = {
    "id": "00000000-0000-4000-8000-000000000000", "status": "succeeded", "task": "caption",
    "model": "m", "created_at": "2026-12-05T00:00:00Z", "tier": "auto", "lane": "batch",
    "served_tier": "standard", "deadline_at": "2026-12-05T02:00:00Z",
    "attempts": [
        {"number": 1, "started_at": "2026-12-05T00:00:01Z", "outcome": "failed",
         "requested_tier": "batch", "served_tier": None, "gemini_batch": "gb-1"},
        {"number": 2, "started_at": "2026-12-05T00:10:00Z", "outcome": "succeeded",
         "requested_tier": "standard", "served_tier": "standard", "gemini_batch": None},
    ],
}  # fmt: skip


def test_job_reads_the_tier_fields_typed() -> None:
    job = Job.model_validate(JOB)
    assert (job.tier, job.lane, job.served_tier) == ("auto", "batch", "standard")
    assert job.deadline_at == datetime(2026, 12, 5, 2, tzinfo=UTC)
    first, second = job.attempts
    assert (first.requested_tier, first.served_tier, first.gemini_batch) == ("batch", None, "gb-1")
    assert (second.requested_tier, second.served_tier) == ("standard", "standard")
    assert second.gemini_batch is None
    # Typed fields, not extras kept by extra="allow".
    assert "tier" not in (job.model_extra or {})
    assert "gemini_batch" not in (first.model_extra or {})


def test_an_older_server_without_tiers_reads_as_standard() -> None:
    old = {key: value for key, value in JOB.items()
           if key not in ("tier", "lane", "served_tier", "deadline_at", "attempts")}  # fmt: skip
    job = Job.model_validate(old)
    assert (job.tier, job.lane, job.served_tier, job.deadline_at) == (
        "standard", "standard", None, None,
    )  # fmt: skip


def _recording_client(sent: list[dict[str, Any]], answer: dict[str, Any]) -> VisionqClient:
    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(202, json=answer)

    return VisionqClient("http://api.test", "k", transport=httpx.MockTransport(handle))


def test_submit_and_estimate_send_tier_and_deadline_in_options() -> None:
    sent: list[dict[str, Any]] = []
    url = "https://images.test/cat.png"  # a URL: the body is JSON
    with _recording_client(sent, JOB) as client:
        job = client.submit(url, task="caption", tier="flex", deadline_s=3600,
                            options={"cache": False})  # fmt: skip
        client.estimate(url, task="caption", tier="batch")
        client.submit(url, task="caption")
    assert job.lane == "batch"
    assert sent[0]["options"] == {"cache": False, "tier": "flex", "deadline_s": 3600}
    assert sent[1]["options"] == {"tier": "batch"}
    assert "options" not in sent[2]


def test_a_tier_given_twice_differently_is_refused() -> None:
    assert tier_options({"tier": "flex"}, "flex", None) == {"tier": "flex"}
    options = {"deadline_s": 60}
    assert tier_options(options, None, None) is options
    with pytest.raises(ValueError, match="tier is given twice"):
        tier_options({"tier": "flex"}, "batch", None)
