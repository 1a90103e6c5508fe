"""The retry policy and how Gemini's error bodies become retry decisions."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import errors as genai_errors

from visionq.worker.gemini import GeminiCallError, _from_api_error
from visionq.worker.retry import DAILY_REFUSALS, MINUTE_WINDOW_S, RetryPolicy, decide

POLICY = RetryPolicy(max_attempts=5, base_s=1.0, max_delay_s=8.0, deadline_s=100.0)


def _highest(low: float, high: float) -> float:
    return high


def _error(code: int, status: str, details: list[dict[str, Any]] | None = None) -> GeminiCallError:
    body: dict[str, Any] = {"error": {"code": code, "message": "m", "status": status}}
    if details is not None:
        body["error"]["details"] = details
    return _from_api_error(genai_errors.APIError(code, body))


def _quota(quota_id: str, delay: str) -> list[dict[str, Any]]:
    return [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaMetric": "x", "quotaId": quota_id}],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
    ]


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(code: int) -> None:
    error = _error(code, "X")
    assert error.retryable
    assert decide(POLICY, error, attempt=1, remaining_s=50).retry


CLIENT_ERRORS = [
    (400, "INVALID_ARGUMENT"),
    (401, "UNAUTHENTICATED"),
    (403, "PERMISSION_DENIED"),
    (404, "NOT_FOUND"),
]


@pytest.mark.parametrize(("code", "status"), CLIENT_ERRORS)
def test_client_errors_fail_at_once(code: int, status: str) -> None:
    error = _error(code, status)
    decision = decide(POLICY, error, attempt=1, remaining_s=50)
    assert not decision.retry and decision.reason is None
    assert error.code == f"gemini_{status.lower()}"


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    ceilings = [POLICY.backoff(n, _highest) for n in range(1, 7)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert POLICY.backoff(3, lambda low, high: low) == 0.0


def test_a_429_waits_at_least_the_retry_info_delay() -> None:
    error = _error(
        429, "RESOURCE_EXHAUSTED", _quota("GenerateRequestsPerMinutePerProjectPerModel", "26s")
    )
    assert error.retry_delay_s == 26.0
    decision = decide(POLICY, error, attempt=1, remaining_s=50, uniform=_highest)
    assert decision.delay_s == 26.0
    fractional = _error(429, "RESOURCE_EXHAUSTED", _quota("PerMinute", "0.5s"))
    assert fractional.retry_delay_s == 0.5


def test_a_per_day_quota_is_not_retried() -> None:
    error = _error(
        429, "RESOURCE_EXHAUSTED", _quota("GenerateRequestsPerDayPerProjectPerModel", "3600s")
    )
    assert error.code == "daily_quota_exhausted"
    assert "PerDay" in error.message and "midnight Pacific" in error.message
    assert not decide(POLICY, error, attempt=1, remaining_s=50).retry


def test_attempts_and_deadline_bound_the_retries() -> None:
    error = _error(503, "UNAVAILABLE")
    last = decide(POLICY, error, attempt=5, remaining_s=50)
    assert not last.retry and last.reason is not None and "5 attempts" in last.reason
    late = decide(POLICY, error, attempt=2, remaining_s=1.5, uniform=_highest)
    assert not late.retry and late.reason is not None and "deadline" in late.reason


def test_odd_error_bodies_do_not_break_the_parsing() -> None:
    bodies: tuple[object, ...] = (
        {"error": {"details": "x"}},
        {"error": {"details": [1, None]}},
        [],
        "text",
    )
    for body in bodies:
        error = _from_api_error(genai_errors.APIError(503, body))
        assert error.retryable and error.retry_delay_s is None
    bad_delay = _error(429, "RESOURCE_EXHAUSTED", _quota("PerMinute", "soon"))
    assert bad_delay.retry_delay_s is None


def test_the_api_key_is_scrubbed_from_messages() -> None:
    error = GeminiCallError("gemini_x", "key AIza-secret was refused").scrubbed("AIza-secret")
    assert "AIza-secret" not in error.message and "AIza-secret" not in str(error)


# --- 429 bodies as Google sends them (worker/quotas.py) ---------------------------------

FREE_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
FREE_TIER_MIXED: list[dict[str, Any]] = [
    # python-genai#2044 / gemini-cli#8437: the free tier names per-minute and per-day quotas
    # together, with a RetryInfo of a second or so.
    {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": FREE_METRIC,
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": "gemini-3.5-flash-lite"},
                "quotaValue": "10",
            },
            {
                "quotaMetric": FREE_METRIC,
                "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": "gemini-3.5-flash-lite"},
                "quotaValue": "250",
            },
        ],
    },
    {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [
            {
                "description": "Learn more",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
            }
        ],
    },
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"},
]
HELP_ONLY: list[dict[str, Any]] = [
    # python-genai#1427: the paid tier's 429 can carry only a Help link.
    {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [
            {
                "description": "Learn more",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
            }
        ],
    }
]


def _spend(delay: str | None) -> list[dict[str, Any]]:
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaId": "GenerateContentSpendPer10MinutesPerProjectTier1"}],
        }
    ]
    if delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
    return details


def _429(
    details: list[dict[str, Any]], message: str = "You exceeded your current quota."
) -> GeminiCallError:
    body: dict[str, Any] = {
        "error": {
            "code": 429,
            "message": message,
            "status": "RESOURCE_EXHAUSTED",
            "details": details,
        }
    }
    return _from_api_error(genai_errors.APIError(429, body))


def test_per_minute_and_per_day_together_with_a_short_delay_are_retried_after_it() -> None:
    error = _429(FREE_TIER_MIXED)
    assert error.code == "gemini_resource_exhausted" and error.retryable
    assert error.daily_quota and error.retry_delay_s == 1.0
    assert "PerDay" in error.message and "PerMinute" in error.message
    decision = decide(POLICY, error, attempt=1, remaining_s=50, daily_refusals=1,
                      uniform=lambda low, high: low)  # fmt: skip
    assert decision.delay_s == 1.0


def test_refusals_naming_a_day_quota_end_the_job_when_they_keep_coming_past_a_minute() -> None:
    error = _429(FREE_TIER_MIXED)
    n = DAILY_REFUSALS
    assert decide(POLICY, error, attempt=2, remaining_s=500, daily_refusals=n - 1,
                  daily_refused_for_s=MINUTE_WINDOW_S + 5).retry  # fmt: skip
    # Refused within a minute: the per-minute quota explains it; asked again.
    assert decide(POLICY, error, attempt=3, remaining_s=500, daily_refusals=n,
                  daily_refused_for_s=3).retry  # fmt: skip
    last = decide(POLICY, error, attempt=3, remaining_s=500, daily_refusals=n,
                  daily_refused_for_s=MINUTE_WINDOW_S + 5)  # fmt: skip
    assert not last.retry and last.code == "daily_quota_exhausted"
    assert last.reason is not None and "midnight Pacific" in last.reason


@pytest.mark.parametrize("delay", [None, "60s", "43200s"])
def test_a_day_only_refusal_with_a_long_or_no_delay_ends_the_job_at_once(delay: str | None) -> None:
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}],
        }
    ]
    if delay:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
    error = _429(details)
    assert error.code == "daily_quota_exhausted" and not error.retryable
    assert not decide(POLICY, error, attempt=1, remaining_s=50).retry
    short = _429(
        [details[0], {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "5s"}]
    )
    assert short.code == "gemini_resource_exhausted" and short.retryable and short.daily_quota


def test_a_help_only_429_is_retried_with_backoff() -> None:
    error = _429(HELP_ONLY, "Resource has been exhausted (e.g. check quota).")
    assert error.code == "gemini_resource_exhausted" and error.retryable
    assert error.retry_delay_s is None and not error.daily_quota
    assert "no quota named" in error.message
    decision = decide(POLICY, error, attempt=3, remaining_s=50, uniform=_highest)
    assert decision.delay_s == 4.0  # the backoff's ceiling for a third attempt


SPEND_MESSAGE = (
    "Your project has exceeded its spend limit of $10.00 per 10 minutes for Tier 1. "
    "Please try again later or raise your spend limit."
)


def test_a_spend_limit_429_is_named_and_waits_for_the_window() -> None:
    error = _429(_spend(None), SPEND_MESSAGE)
    assert error.code == "spend_limit_exceeded" and error.retryable
    assert "$10.00 per 10 minutes for Tier 1" in error.message
    assert "AI Studio" in error.message and "VISIONQ_RATE_LIMITS" in error.message
    # No RetryInfo: the rest of the rolling 10 minutes, at worst all of it.
    assert error.retry_delay_s == 600.0
    assert decide(POLICY, error, attempt=1, remaining_s=900).delay_s == 600.0
    late = decide(POLICY, error, attempt=1, remaining_s=300)
    assert not late.retry and late.reason is not None and "deadline" in late.reason
    # With a RetryInfo, that delay; recognised by the quota id alone, tier named.
    by_id = _429(_spend("42s"), "Resource exhausted.")
    assert by_id.code == "spend_limit_exceeded" and by_id.retry_delay_s == 42.0
    assert "Tier 1" in by_id.message
    by_message = _429([], SPEND_MESSAGE)
    assert by_message.code == "spend_limit_exceeded"
