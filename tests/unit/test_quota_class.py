"""Every 429 shape Gemini sends gets its quota class (GeminiCallError.quota_class), the
label of visionq_gemini_responses_total: per_minute, per_day, spend, help_only; anything
that is not a 429 has none. Read through the SDK's own APIError, as the worker reads it."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import errors as genai_errors

from visionq.worker.gemini import _from_api_error
from visionq.worker.quotas import QUOTA_CLASSES

QUOTA = "type.googleapis.com/google.rpc.QuotaFailure"
RETRY = "type.googleapis.com/google.rpc.RetryInfo"
HELP = "type.googleapis.com/google.rpc.Help"
PER_MINUTE = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
PER_DAY = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"


def refusal(
    quota_ids: list[str], delay: str | None, *, message: str = "You exceeded your current quota."
) -> genai_errors.APIError:
    details: list[dict[str, Any]] = []
    if quota_ids:
        details.append({"@type": QUOTA, "violations": [{"quotaId": q} for q in quota_ids]})
    if delay is not None:
        details.append({"@type": RETRY, "retryDelay": delay})
    if not details:
        details.append({"@type": HELP, "links": [{"url": "https://ai.google.dev/"}]})
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": message,
                      "details": details}}  # fmt: skip
    return genai_errors.APIError(429, body)


@pytest.mark.parametrize(
    ("error", "quota_class", "code"),
    [
        pytest.param(refusal([PER_MINUTE], "26s"), "per_minute", "gemini_resource_exhausted",
                     id="per-minute"),
        pytest.param(refusal([PER_MINUTE, PER_DAY], "3s"), "per_minute",
                     "gemini_resource_exhausted", id="per-minute-and-per-day"),
        pytest.param(refusal([], "2s"), "per_minute", "gemini_resource_exhausted",
                     id="retry-info-only"),
        pytest.param(refusal([PER_DAY], None), "per_day", "daily_quota_exhausted",
                     id="per-day-no-delay"),
        pytest.param(refusal([PER_DAY], "3600s"), "per_day", "daily_quota_exhausted",
                     id="per-day-long-delay"),
        pytest.param(refusal([PER_DAY], "5s"), "per_day", "gemini_resource_exhausted",
                     id="per-day-short-delay"),
        pytest.param(refusal(["GenerateContentPaidTierSpendPerTenMinutesTier1"], "60s"),
                     "spend", "spend_limit_exceeded", id="spend-quota-id"),
        pytest.param(refusal([], None, message="Your project has reached its spend limit of "
                                               "$10.00 per 10 minutes."),
                     "spend", "spend_limit_exceeded", id="spend-message"),
        pytest.param(refusal([], None), "help_only", "gemini_resource_exhausted",
                     id="help-only"),
    ],
)  # fmt: skip
def test_each_429_shape_has_its_quota_class(
    error: genai_errors.APIError, quota_class: str, code: str
) -> None:
    translated = _from_api_error(error)
    assert translated.http_status == 429
    assert translated.code == code
    assert translated.quota_class == quota_class
    assert translated.quota_class in QUOTA_CLASSES


@pytest.mark.parametrize("status", [400, 500, 503])
def test_other_statuses_have_no_quota_class(status: int) -> None:
    body = {"error": {"code": status, "status": "UNAVAILABLE", "message": "try later"}}
    assert _from_api_error(genai_errors.APIError(status, body)).quota_class is None
