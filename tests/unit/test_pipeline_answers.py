"""The pipeline on Gemini's real answer shapes: a real (SQLite) database and blob store,
with Gemini's HTTP replies stood in for by their JSON bodies read through the SDK's types
(the collaborator faked here is the network, not the reading of the answers)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors as genai_errors
from google.genai import types

from tests.unit.workercontext import worker_context
from visionq.emulator.shapes import encode, random_scene
from visionq.models.budgets import reserve
from visionq.models.jobs import NewInput, create_job, get_job
from visionq.models.tables import Job
from visionq.vision.costing import to_nano
from visionq.worker.context import WorkerContext
from visionq.worker.gemini import GeminiAnswer, GeminiCaller, _answer_from_response, _from_api_error
from visionq.worker.pipeline import run_job
from visionq.worker.ratelimit import GeminiRateLimiter

Reply = dict[str, Any]


def _text(text: str, *, model: str, thoughts: int = 0, finish: str = "STOP") -> Reply:
    parts = [{"text": "Let me look at the shapes first.", "thought": True}, {"text": text}]
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
        "usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 10,
                          "thoughtsTokenCount": thoughts, "totalTokenCount": 1010 + thoughts},
        "modelVersion": model,
    }  # fmt: skip


def _thoughts_only(thoughts: int, *, model: str) -> Reply:
    # python-genai#782: the whole cap went to thinking; the candidate has no content.
    return {
        "candidates": [{"finishReason": "MAX_TOKENS", "index": 0}],
        "usageMetadata": {"promptTokenCount": 1000, "thoughtsTokenCount": thoughts,
                          "totalTokenCount": 1000 + thoughts},
        "modelVersion": model,
    }  # fmt: skip


def _mixed_429(delay: str) -> genai_errors.APIError:
    quota = "type.googleapis.com/google.rpc.QuotaFailure"
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                      "message": "You exceeded your current quota.",
                      "details": [{"@type": quota, "violations": [
                          {"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"},
                          {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
                          {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                           "retryDelay": delay}]}}  # fmt: skip
    return genai_errors.APIError(429, body)


class ScriptedGemini(GeminiCaller):
    """Answers each call with the next scripted reply, read as the real caller reads it."""

    def __init__(self, replies: list[Reply | genai_errors.APIError]) -> None:
        super().__init__(None)
        self.replies = list(replies)
        self.configs: list[dict[str, Any]] = []

    def generate(
        self, *, model: str, contents: list[Any], config: dict[str, Any], **tier: Any
    ) -> GeminiAnswer:
        self.configs.append(dict(config))
        reply = self.replies.pop(0)
        if isinstance(reply, genai_errors.APIError):
            raise _from_api_error(reply)
        return _answer_from_response(types.GenerateContentResponse.model_validate(reply))


@pytest.fixture
def context(tmp_path: Path) -> Iterator[WorkerContext]:
    built = worker_context(tmp_path)
    yield built
    built.close()


def _run(
    context: WorkerContext,
    replies: list[Reply | genai_errors.APIError],
    *,
    model: str,
    options: dict[str, Any] | None = None,
    task: str = "caption",
    estimate: dict[str, Any] | None = None,
) -> tuple[Job, ScriptedGemini]:
    gemini = ScriptedGemini(replies)
    context.gemini = gemini
    image, _ = random_scene(3, width=320, height=240)
    data = encode(image, "PNG")
    sha = context.blobs.put(data)
    with context.sessions.begin() as session:
        assert reserve(session, tenant="t", amount_nusd=0)
        job_id = create_job(
            session, tenant="t", task=task, model=model, prompt=None, labels=None,
            options=options or {}, inputs=[NewInput(sha, "image/png", 320, 240, len(data))],
            estimate=estimate,
        ).id  # fmt: skip
    run_job(context, job_id)
    assert gemini.replies == [], "every scripted reply was asked for"
    with context.sessions() as session:
        job = get_job(session, tenant="t", job_id=job_id)
        assert job is not None
        job.attempts.sort(key=lambda attempt: attempt.id)
        session.expunge_all()
    return job, gemini


def test_thoughts_using_the_cap_raise_it_once_and_the_answer_comes(
    context: WorkerContext,
) -> None:
    # No options.max_output_tokens: visionq's own caption cap (256 + 1024 thinking) is
    # raised once.
    model = "gemini-3.6-flash"
    job, gemini = _run(
        context,
        [_thoughts_only(1276, model=model), _text("Two shapes.", model=model, thoughts=900)],
        model=model,
    )
    assert job.status == "succeeded" and job.result == {"text": "Two shapes."}
    # The cap went from 1280 to twice that (more than the thoughts plus a caption's 256).
    assert [config.get("max_output_tokens") for config in gemini.configs] == [1280, 2560]
    first, second = job.attempts
    assert first.outcome == "failed" and second.outcome == "succeeded"
    assert first.error_message is not None
    assert "1276 tokens" in first.error_message
    assert "max_output_tokens 2560" in first.error_message
    # Both calls are billed, thinking tokens at the output price.
    usage = {"promptTokenCount": 2000, "candidatesTokenCount": 10, "thoughtsTokenCount": 2176}
    expected = context.costs.call_cost(model, usage)
    assert expected is not None and job.cost_nusd == to_nano(expected)


def test_thoughts_using_the_users_cap_fail_at_once_saying_what_to_change(
    context: WorkerContext,
) -> None:
    """A cap the user set is never raised: the job must not spend past it."""
    model = "gemini-3.6-flash"
    replies: list[Reply | genai_errors.APIError] = [_thoughts_only(252, model=model)]
    job, gemini = _run(context, replies, model=model, options={"max_output_tokens": 256})
    assert [config.get("max_output_tokens") for config in gemini.configs] == [256]
    assert job.status == "failed" and job.error_code == "max_tokens_exhausted"
    assert job.error_message is not None
    assert "252 of the 256 output tokens" in job.error_message
    assert "raised once" not in job.error_message
    assert "options.max_output_tokens" in job.error_message
    assert "thinking_level" in job.error_message and len(job.attempts) == 1


def test_without_a_job_cap_the_sent_cap_is_raised_to_the_model_limit_then_it_fails(
    context: WorkerContext,
) -> None:
    # No options.max_output_tokens: visionq sent a caption's 256 plus its thinking's 1024
    # (vision.tasks.TASK_DEFAULTS); thinking used it all, then twice that.
    model = "gemini-3.6-flash"
    replies: list[Reply | genai_errors.APIError] = [
        _thoughts_only(1280, model=model),
        _thoughts_only(2560, model=model),
    ]
    job, gemini = _run(context, replies, model=model)
    assert [config.get("max_output_tokens") for config in gemini.configs] == [1280, 2560]
    assert gemini.configs[0]["thinking_config"] == {"thinking_level": "MINIMAL"}
    assert job.error_code == "max_tokens_exhausted" and len(job.attempts) == 2
    assert job.error_message is not None and "2560 of the 2560" in job.error_message


def test_a_routed_answer_is_flagged_and_priced_as_the_model_that_answered(
    context: WorkerContext,
) -> None:
    served = "gemini-3.5-flash-lite-001"
    job, _ = _run(context, [_text("A scene.", model=served, thoughts=40)],
                  model="gemini-2.5-flash")  # fmt: skip
    assert job.status == "succeeded" and job.model_version == served
    assert job.warnings is not None
    [warning] = [w for w in job.warnings if w["code"] == "model_routed"]
    assert served in warning["message"] and "gemini-2.5-flash" in warning["message"]
    assert f"priced at {served}'s rate" in warning["message"]
    usage = {"promptTokenCount": 1000, "candidatesTokenCount": 10, "thoughtsTokenCount": 40}
    price = context.costs.call_cost(served, usage)
    assert price is not None and price > Decimal(0) and job.cost_nusd == to_nano(price)


def test_a_routed_answer_from_an_unpriced_model_is_priced_as_asked_and_says_so(
    context: WorkerContext,
) -> None:
    job, _ = _run(context, [_text("A scene.", model="gemini-9-flash")], model="gemini-3.6-flash")
    assert job.warnings is not None and job.warnings[0]["code"] == "model_routed"
    assert "gemini-9-flash has no known price" in job.warnings[0]["message"]
    usage = {"promptTokenCount": 1000, "candidatesTokenCount": 10}
    price = context.costs.call_cost("gemini-3.6-flash", usage)
    assert price is not None and job.cost_nusd == to_nano(price)


def test_a_version_suffix_is_not_routing(context: WorkerContext) -> None:
    job, _ = _run(context, [_text("A scene.", model="gemini-3.6-flash-001")],
                  model="gemini-3.6-flash")  # fmt: skip
    assert job.status == "succeeded" and not job.warnings


def test_a_mixed_minute_and_day_429_is_retried_after_its_delay(context: WorkerContext) -> None:
    model = "gemini-3.6-flash"
    job, _ = _run(context, [_mixed_429("0.05s"), _text("A scene.", model=model)], model=model)
    assert job.status == "succeeded"
    first = job.attempts[0]
    assert first.http_status == 429 and first.retry_delay_s is not None
    assert first.retry_delay_s >= 0.05


def test_day_quota_refusals_within_a_minute_are_not_taken_for_the_day(
    context: WorkerContext,
) -> None:
    # Quick refusals naming both quotas: the per-minute one explains them; the job keeps
    # asking until VISIONQ_MAX_ATTEMPTS and says the per-day quota may be what ran out.
    attempts = context.settings.max_attempts
    replies: list[Reply | genai_errors.APIError] = [_mixed_429("0.01s") for _ in range(attempts)]
    job, _ = _run(context, replies, model="gemini-3.6-flash")
    assert job.status == "failed" and job.error_code == "gemini_resource_exhausted"
    assert len(job.attempts) == attempts
    assert job.error_message is not None and "per-day quota" in job.error_message


def test_an_answer_cut_at_the_users_cap_is_never_kept_nor_asked_again(
    context: WorkerContext,
) -> None:
    """Issue 17: a caption cut at max_output_tokens read like a whole one and was stored as
    a success. Cut at the cap the user set, it fails answer_truncated at once: that cap is
    never raised (a retry at twice it would spend past what the user allowed)."""
    model = "gemini-3.6-flash"
    cut = _text("A red square and a", model=model, finish="MAX_TOKENS")
    job, gemini = _run(context, [cut], model=model, options={"max_output_tokens": 5})
    assert job.status == "failed" and job.error_code == "answer_truncated"
    assert [config.get("max_output_tokens") for config in gemini.configs] == [5]
    assert job.error_message is not None and "finish reason MAX_TOKENS" in job.error_message
    assert "Raise options.max_output_tokens" in job.error_message
    assert "raised once" not in job.error_message and job.result is None
    assert len(job.attempts) == 1


def test_an_answer_cut_at_the_raised_cap_is_never_kept(context: WorkerContext) -> None:
    model = "gemini-3.6-flash"
    cut = _text("A red square and a", model=model, finish="MAX_TOKENS")
    longer = _text("A red square and a blue", model=model, finish="MAX_TOKENS")
    replies: list[Reply | genai_errors.APIError] = [cut, longer]
    job, gemini = _run(context, replies, model=model)
    assert job.status == "failed" and job.error_code == "answer_truncated"
    assert [config.get("max_output_tokens") for config in gemini.configs] == [1280, 2560]
    assert job.error_message is not None and "raised once from 1280" in job.error_message
    assert job.result is None


def test_an_answer_cut_at_the_cap_is_asked_for_again_with_a_larger_one(
    context: WorkerContext,
) -> None:
    model = "gemini-3.6-flash"
    cut = _text('[{"box_2d": [10, 20, 30', model=model, finish="MAX_TOKENS")
    whole = _text('[{"box_2d": [10, 20, 30, 40], "label": "square"}]', model=model)
    job, gemini = _run(context, [cut, whole], model=model, task="detect")
    assert job.status == "succeeded" and job.result is not None
    assert len(job.result["objects"]) == 1
    sent = [config.get("max_output_tokens") for config in gemini.configs]
    assert sent == [64 + 40 * 50 + 1024, 2 * (64 + 40 * 50 + 1024)]


class RecordingLimiter(GeminiRateLimiter):
    """Admits every call at once and remembers what it was asked to pace."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, Decimal]] = []

    def acquire(self, model: str, tokens: int, *, deadline: float, usd: Decimal = Decimal(0),  # type: ignore[override]
                sleep: object = None, clock: object = None) -> None:  # fmt: skip
        self.calls.append((model, tokens, usd))

    def take_admission(self) -> None:
        return None  # nothing recorded in Redis: nothing to settle or take back

    def learn_429(self, model: str, **_: object) -> None:
        return None


def test_each_call_is_paced_with_the_estimated_dollars(context: WorkerContext) -> None:
    limiter = RecordingLimiter()
    context.limiter = limiter
    model = "gemini-3.6-flash"
    estimate = {"input_tokens": 300, "cost_usd": {"min": "0.00045", "max": "0.0123456789"}}
    replies: list[Reply | genai_errors.APIError] = [
        _mixed_429("0.01s"),
        _text("A scene.", model=model),
    ]
    job, _ = _run(context, replies, model=model, estimate=estimate)
    assert job.status == "succeeded"
    # Every call (the retry too) is paced: it may cost that much again.
    assert limiter.calls == [(model, 300, Decimal("0.0123456789"))] * 2
    limiter.calls.clear()
    _run(context, [_text("A scene.", model=model)], model=model, estimate={"input_tokens": 5})
    assert limiter.calls == [(model, 5, Decimal(0))], "an unknown cost counts no dollars"
