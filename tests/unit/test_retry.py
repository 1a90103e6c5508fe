"""The retry policy and how Gemini's error bodies become retry decisions."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import errors as genai_errors

from worker.gemini import GeminiCallError, _from_api_error
from worker.retry import RetryPolicy, decide

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
    for body in ({"error": {"details": "x"}}, {"error": {"details": [1, None]}}, [], "text"):
        error = _from_api_error(genai_errors.APIError(503, body))
        assert error.retryable and error.retry_delay_s is None
    bad_delay = _error(429, "RESOURCE_EXHAUSTED", _quota("PerMinute", "soon"))
    assert bad_delay.retry_delay_s is None


def test_the_api_key_is_scrubbed_from_messages() -> None:
    error = GeminiCallError("gemini_x", "key AIza-secret was refused").scrubbed("AIza-secret")
    assert "AIza-secret" not in error.message and "AIza-secret" not in str(error)
