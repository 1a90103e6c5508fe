"""A 429's ``quotaValue`` is external input: a value that is no finite positive number
("Infinity", "1e999", "nan", text) is read as no value, never as an error that would replace
the 429 (issue 23 code review B)."""

from __future__ import annotations

import pytest
from google.genai import errors as genai_errors

from visionq.worker.quota_learn import quota_violation

QUOTA = "type.googleapis.com/google.rpc.QuotaFailure"
METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"


def refusal(value: str) -> genai_errors.APIError:
    violation = {"quotaMetric": METRIC, "quotaId": "GenerateRequestsPerMinute", "quotaValue": value}
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
                      "details": [{"@type": QUOTA, "violations": [violation]}]}}  # fmt: skip
    return genai_errors.APIError(429, body)


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "1e999", "nan", "NaN", "x", "0", "-5"])
def test_a_quota_value_that_is_no_finite_positive_number_is_none(value: str) -> None:
    assert quota_violation(refusal(value)) == ("rpm", None)


def test_a_finite_quota_value_is_read() -> None:
    assert quota_violation(refusal("15")) == ("rpm", 15)
    assert quota_violation(refusal("2.5e3")) == ("rpm", 2500)
