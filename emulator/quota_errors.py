"""429 RESOURCE_EXHAUSTED bodies as the Gemini API sends them (see emulator/README.md).

Per-minute and per-day quotas (QuotaFailure, Help, RetryInfo), the Help-only body of paid
projects, and the spend-limit body (an assumed shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from visionq.emulator.errors import EmulatorError

RATE_LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"


@dataclass(frozen=True)
class QuotaLimit:
    """One violated quota as the QuotaFailure detail names it."""

    quota_metric: str
    quota_id: str
    quota_value: int


def format_duration(seconds: float) -> str:
    """A google.protobuf.Duration in JSON, as RetryInfo carries it: "2s", "0.5s", "1.25s".

    Millisecond precision; trailing zeros of the fraction are dropped.
    """
    whole, millis = divmod(max(round(seconds * 1000), 0), 1000)
    if not millis:
        return f"{whole}s"
    return f"{whole}.{millis:03d}".rstrip("0") + "s"


def _quota_message(lines: str, delay: str | None) -> str:
    retry = f"Please retry in {delay}." if delay is not None else ""
    return (
        "You exceeded your current quota, please check your plan and billing details. For more"
        f" information on this error, head to: {RATE_LIMITS_URL}. To monitor your current"
        f" usage, head to: https://ai.dev/rate-limit. \n{lines}{retry}"
    )


HELP_DETAIL: dict[str, Any] = {
    "@type": "type.googleapis.com/google.rpc.Help",
    "links": [{"description": "Learn more about Gemini API quotas", "url": RATE_LIMITS_URL}],
}


def quota_exceeded(model: str, limits: list[QuotaLimit], retry_delay_s: float) -> EmulatorError:
    """429 RESOURCE_EXHAUSTED with QuotaFailure, Help and RetryInfo, like the Gemini API.

    ``limits`` may mix per-minute and per-day quotas (the free tier lists both at once).
    The delay is in the body only (RetryInfo ``retryDelay``), never in a Retry-After header.
    """
    delay = format_duration(retry_delay_s)
    lines = "".join(
        f"* Quota exceeded for metric: {limit.quota_metric}, limit: {limit.quota_value},"
        f" model: {model}\n"
        for limit in limits
    )
    violations = [
        {
            "quotaMetric": limit.quota_metric,
            "quotaId": limit.quota_id,
            "quotaDimensions": {"location": "global", "model": model},
            # int64 travels as a JSON string in Google's proto3 JSON.
            "quotaValue": str(limit.quota_value),
        }
        for limit in limits
    ]
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations},
        HELP_DETAIL,
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
    ]
    return EmulatorError(429, _quota_message(lines, delay), details=details)


def quota_help_only() -> EmulatorError:
    """429 whose only detail is a google.rpc.Help: no QuotaFailure, no RetryInfo.

    What paid-tier projects were seen to get (python-genai#1427).
    """
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more"
        f" information on this error, head to: {RATE_LIMITS_URL}."
    )
    return EmulatorError(429, message, details=[HELP_DETAIL])


# Rolling spend limits per usage tier, USD per 10 minutes (GEMINI.md, "Rate limits").
SPEND_LIMITS_USD: dict[int, int] = {1: 10, 2: 50, 3: 200}


def _dollars(usd: float) -> str:
    # Real limits are whole dollars ("10.00"); tiny test limits keep their digits.
    return f"{usd:.2f}" if usd >= 0.01 else f"{usd:g}"


def spend_limit_exceeded(
    model: str, tier: int, retry_delay_s: float, limit_usd: float | None = None
) -> EmulatorError:
    """429 for Gemini's rolling spend limit (dollars per 10 minutes per usage tier).

    The shape is assumed, not captured: a message naming the limit and tier, a
    QuotaFailure with quota id ``GenerateContentSpendPer10MinutesPerProjectTier{N}``,
    Help and RetryInfo. ``limit_usd`` (a configured limit) replaces the tier's own.
    """
    limit = SPEND_LIMITS_USD[tier] if limit_usd is None else limit_usd
    delay = format_duration(retry_delay_s)
    message = (
        f"Your project has exceeded its spend limit of ${_dollars(limit)} per 10 minutes for Tier"
        f" {tier}. Wait for earlier spending to leave the 10-minute window, or raise your"
        f" usage tier. For more information, head to: {RATE_LIMITS_URL}. Please retry in"
        f" {delay}."
    )
    violation = {
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_spend",
        "quotaId": f"GenerateContentSpendPer10MinutesPerProjectTier{tier}",
        "quotaDimensions": {"location": "global", "model": model},
        "quotaValue": str(round(limit)),
    }
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
        HELP_DETAIL,
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
    ]
    return EmulatorError(429, message, details=details)
