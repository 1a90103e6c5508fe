"""End to end (API -> Redis -> worker -> SDK -> emulator) on answers and 429s as Google
gives them, the emulator playing each outcome through its fault settings: thinking that
shares max_output_tokens, blocked prompts and outputs, empty answers, silent routing,
the 429 bodies seen in the field and the three segmentation-mask formats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack, _build_stack, _start_emulator
from tests.integration.helpers import run_job
from visionq.emulator.shapes import Shape, draw_scene, encode

pytestmark = pytest.mark.integration

# Google silently routes this id to a successor; visionq's catalogue still lists it as
# stable, as it would the day Google starts routing before the catalogue is updated.
ROUTED = {
    "models": {"gemini-3.1-flash-lite": {"status": "routed", "successor": "gemini-3.5-flash-lite"}}
}
QUICK_RETRIES = {
    "VISIONQ_MAX_ATTEMPTS": "4",
    "VISIONQ_RETRY_BASE_S": "0.05",
    "VISIONQ_RETRY_MAX_DELAY_S": "0.2",
}
SHAPES = [
    Shape("rectangle", "red", (40, 30, 160, 110)),
    Shape("rectangle", "blue", (220, 60, 300, 200)),
]


@pytest.fixture(scope="module")
def answers(workdir: Path, redis_url: str) -> Iterator[tuple[Stack, str]]:
    """A stack of its own (SQLite) before an emulator whose faults these tests change."""
    models_file = workdir / "routed-models.json"
    models_file.write_text(json.dumps(ROUTED))
    proc, url = _start_emulator(workdir, "answers-emulator", "--models-file", str(models_file))
    built = _build_stack(
        "answers",
        workdir,
        f"sqlite:///{workdir / 'answers.db'}",
        redis_url,
        url,
        with_worker=True,
        extra_env=QUICK_RETRIES,
    )
    yield built, url
    built.stop()
    proc.stop()


@pytest.fixture
def stack(answers: tuple[Stack, str]) -> Iterator[Stack]:
    yield answers[0]
    httpx.post(f"{answers[1]}/_emulator/reset", timeout=10).raise_for_status()


def _faults(answers: tuple[Stack, str], **settings: Any) -> None:
    httpx.post(f"{answers[1]}/_emulator/faults", json=settings, timeout=10).raise_for_status()


def _image() -> bytes:
    return encode(draw_scene(320, 240, SHAPES), "PNG")


def _run(client: httpx.Client, task: str, model: str, **options: Any) -> dict[str, Any]:
    """A job run afresh (never the stored result of an identical earlier one)."""
    return run_job(client, _image(), task=task, model=model, options={"cache": False, **options})


def test_thinking_that_uses_the_cap_gets_it_raised_once(
    answers: tuple[Stack, str], stack: Stack
) -> None:
    _faults(answers, thoughts_tokens=2000)
    with stack.client() as client:
        # No max_output_tokens: visionq's own caption cap (256 + 1024 thinking) is raised.
        job = _run(client, "caption", "gemini-3.8-flash")
    assert job["status"] == "succeeded", job["error"]
    first, second = job["attempts"]
    assert first["outcome"] == "failed" and second["outcome"] == "succeeded"
    # The thoughts took all 1280 tokens: twice that leaves room for the answer even though
    # they use 2000 this time.
    assert "thinking used 1280 tokens" in first["error_message"]
    assert "max_output_tokens 2560 (was 1280)" in first["error_message"]
    assert "synthetic" in job["result"]["text"].lower()
    assert "thought summary" not in job["result"]["text"]
    # Both calls' thoughts are in the usage (billed as output).
    assert job["usage"]["thoughts_tokens"] == 1280 + 2000


def test_thinking_that_uses_the_users_cap_fails_at_once_saying_what_to_change(
    answers: tuple[Stack, str], stack: Stack
) -> None:
    _faults(answers, thoughts_tokens=70_000)
    with stack.client() as client:
        job = _run(client, "caption", "gemini-3.8-flash", max_output_tokens=40_000)
    assert job["status"] == "failed" and job["error"]["code"] == "max_tokens_exhausted"
    message = job["error"]["message"]
    # The user's cap is never raised (a retry would spend past it).
    assert "40000 of the 40000 output tokens" in message and "raised once" not in message
    assert "options.max_output_tokens" in message and "thinking_level" in message
    assert job["attempt_count"] == 1


@pytest.mark.parametrize(
    ("setting", "value", "code", "advice"),
    [
        ("prompt_block_reason", "SAFETY", "blocked_prompt", "change the image or the prompt"),
        ("prompt_block_reason", "PROHIBITED_CONTENT", "blocked_prompt", "refused again"),
        ("blocked_finish_reason", "RECITATION", "blocked_output", "description or summary"),
        ("blocked_finish_reason", "IMAGE_SAFETY", "blocked_output", "about the image"),
        ("blocked_finish_reason", "SPII", "blocked_output", "without personal data"),
        ("blocked_finish_reason", "MALFORMED_RESPONSE", "malformed_response", "retried"),
        ("blocked_finish_reason", "OTHER", "answer_stopped", "again later"),
    ],
)
def test_blocked_and_stopped_answers_fail_with_their_reason(
    answers: tuple[Stack, str], stack: Stack, setting: str, value: str, code: str, advice: str
) -> None:
    _faults(answers, **{setting: value})
    with stack.client() as client:
        job = _run(client, "caption", "gemini-3.8-flash")
    assert job["status"] == "failed" and job["error"]["code"] == code
    assert value in job["error"]["message"] and advice in job["error"]["message"]
    # Only a malformed answer is worth asking for again.
    assert job["attempt_count"] == (4 if code == "malformed_response" else 1)


@pytest.mark.parametrize("empty", ["no_candidates", "no_parts", "empty_text"])
def test_an_empty_answer_is_asked_for_again(
    answers: tuple[Stack, str], stack: Stack, empty: str
) -> None:
    _faults(answers, empty_answer=empty, outcome_every=2)
    with stack.client() as client:
        job = _run(client, "caption", "gemini-3.8-flash")
        if job["attempt_count"] == 1:  # this stack's first call was an even one: once more
            job = _run(client, "caption", "gemini-3.8-flash")
    assert job["status"] == "succeeded", job["error"]
    assert [a["outcome"] for a in job["attempts"]] == ["failed", "succeeded"]
    assert (
        "empty" in job["attempts"][0]["error_message"]
        or "no " in (job["attempts"][0]["error_message"])
    )


def test_a_routed_answer_is_flagged_and_priced_at_the_served_model(
    answers: tuple[Stack, str], stack: Stack
) -> None:
    with stack.client() as client:
        job = _run(client, "caption", "gemini-3.1-flash-lite")
        assert job["status"] == "succeeded", job["error"]
        assert job["model_version"].startswith("gemini-3.5-flash-lite")
        [warning] = [w for w in job["warnings"] if w["code"] == "model_routed"]
        assert "gemini-3.5-flash-lite" in warning["message"]
        assert "gemini-3.1-flash-lite" in warning["message"]
        # The same call on the model that answered costs the same.
        direct = _run(client, "caption", "gemini-3.5-flash-lite")
    assert direct["status"] == "succeeded" and not direct.get("warnings")
    assert job["usage"] == direct["usage"]
    assert job["cost_usd"] == direct["cost_usd"]


def test_a_routed_answer_is_flagged_on_a_job_that_fails_too(
    answers: tuple[Stack, str], stack: Stack
) -> None:
    _faults(answers, blocked_finish_reason="SAFETY")
    with stack.client() as client:
        job = _run(client, "caption", "gemini-3.1-flash-lite")
    assert job["status"] == "failed" and job["error"]["code"] == "blocked_output"
    [warning] = [w for w in job["warnings"] if w["code"] == "model_routed"]
    assert "gemini-3.5-flash-lite" in warning["message"]


def test_a_free_tier_429_naming_minute_and_day_quotas_is_retried_after_its_delay(
    answers: tuple[Stack, str], stack: Stack
) -> None:
    _faults(
        answers, fail_429_rate=1.0, quota_shape="mixed_daily", quota_tier="free", retry_delay_s=0.1
    )
    with stack.client() as client:
        job = _run(client, "caption", "gemini-3.8-flash")
    # Every call refused within a second or two, naming both quotas: the per-minute one
    # explains that, so the job is not ended as the day's quota (python-genai#2044); it
    # asks until VISIONQ_MAX_ATTEMPTS and says the per-day quota may be what ran out.
    assert job["status"] == "failed" and job["error"]["code"] == "gemini_resource_exhausted"
    assert job["attempt_count"] == 4 and "per-day quota" in job["error"]["message"]
    assert all(a["retry_delay_s"] >= 0.1 for a in job["attempts"][:3])


def test_one_free_tier_429_then_an_answer(answers: tuple[Stack, str], stack: Stack) -> None:
    _faults(
        answers,
        fail_429_rate=0.5,
        quota_shape="mixed_daily",
        quota_tier="free",
        retry_delay_s=0.1,
        fault_seed=3,
    )
    with stack.client() as client:
        jobs = [_run(client, "caption", "gemini-3.8-flash") for _ in range(4)]
    assert all(job["status"] == "succeeded" for job in jobs), [j["error"] for j in jobs]
    refused = [a for job in jobs for a in job["attempts"] if a["outcome"] == "failed"]
    assert refused and all(a["http_status"] == 429 for a in refused)
    assert all(a["retry_delay_s"] >= 0.1 for a in refused)


def test_a_help_only_429_is_retried_with_backoff(answers: tuple[Stack, str], stack: Stack) -> None:
    _faults(answers, always_fail=429, quota_shape="help_only")
    with stack.client() as client:
        job = _run(client, "caption", "gemini-3.8-flash")
    assert job["status"] == "failed" and job["error"]["code"] == "gemini_resource_exhausted"
    assert job["attempt_count"] == 4 and "gave up after 4 attempts" in job["error"]["message"]
    assert "no quota named" in job["error"]["message"]


def test_a_spend_limit_429_is_named(answers: tuple[Stack, str], stack: Stack) -> None:
    _faults(answers, always_fail=429, quota_shape="spend_limit", spend_tier=2, retry_delay_s=0.05)
    with stack.client() as client:
        job = _run(client, "caption", "gemini-3.8-flash")
    assert job["status"] == "failed" and job["error"]["code"] == "spend_limit_exceeded"
    message = job["error"]["message"]
    assert "$50.00 per 10 minutes for Tier 2" in message
    assert "AI Studio" in message and "VISIONQ_RATE_LIMITS" in message


@pytest.mark.parametrize("mask_format", ["png", "seg_tokens", "polygon"])
def test_segment_masks_in_each_format_match_the_shapes(
    answers: tuple[Stack, str], stack: Stack, mask_format: str
) -> None:
    _faults(answers, mask_format=mask_format)
    with stack.client() as client:
        job = _run(client, "segment", "gemini-3.8-flash")
        assert job["status"] == "succeeded", job["error"]
        by_label = {obj["label"]: obj for obj in job["result"]["objects"]}
        assert sorted(by_label) == sorted(shape.label for shape in SHAPES)
        for shape in SHAPES:
            found = by_label[shape.label]
            box_area = (found["box"][2] - found["box"][0]) * (found["box"][3] - found["box"][1])
            # A rectangle fills its box: the mask covers (almost) all of it.
            assert 0.9 * box_area <= found["area"] <= box_area, (mask_format, found)
            mask = client.get(f"/v1/jobs/{job['id']}/masks/0.png")
            assert mask.status_code == 200 and mask.content.startswith(b"\x89PNG")
