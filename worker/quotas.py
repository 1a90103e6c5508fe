"""What a 429 from Gemini means, read from its body as Google sends it.

Google's 429 bodies carry their facts in ``error.details``: ``google.rpc.QuotaFailure``
(``violations[].quotaId``, e.g. ``GenerateRequestsPerMinutePerProjectPerModel-FreeTier``
or ``...PerDay...``), ``google.rpc.RetryInfo`` (``retryDelay``, "26s") and
``google.rpc.Help`` (links). Four shapes are seen in the field, each handled its way:

- **per-minute (or per-day and per-minute together) with a short RetryInfo**
  (python-genai#2044, gemini-cli#8437): code ``gemini_resource_exhausted``, retried after
  at least the RetryInfo delay. When a per-day id is named the error is flagged
  ``daily_quota``; worker/retry.py ends the job ``daily_quota_exhausted`` once
  ``DAILY_REFUSALS`` attempts in a row, over more than a minute, have been refused so.
- **per-day only, with no RetryInfo or one of ``LONG_DELAY_S`` or more**: the day's quota
  is gone and asking again within the job's deadline only burns attempts: code
  ``daily_quota_exhausted`` at once.
- **Help only** (no QuotaFailure, no RetryInfo; paid tier, python-genai#1427): code
  ``gemini_resource_exhausted``, retried with backoff.
- **spend limit** (Gemini's rolling dollars per 10 minutes per tier: a quota id with
  "Spend" in it, or "spend limit" in the message): code ``spend_limit_exceeded``, retried
  after the RetryInfo delay or else a whole window (``SPEND_WINDOW_S``), within the job's
  deadline.

Each error names its shape in ``quota_class`` (``per_minute``, ``per_day`` — per-day ids
only —, ``spend``, ``help_only``), the label of ``visionq_gemini_responses_total``, so an
operator sees which quota refuses calls.
"""

from __future__ import annotations

import re
from typing import Any

from visionq.worker.errors import GeminiCallError

# Gemini's spend limits are over a rolling 10 minutes: after that long, every dollar spent
# before the refusal has left the window.
SPEND_WINDOW_S = 600.0
# A per-day-only refusal asking for at least this long is the day's quota, not a burst.
LONG_DELAY_S = 60.0
# GeminiCallError.quota_class of the four shapes above (metrics label values).
PER_MINUTE, PER_DAY, SPEND, HELP_ONLY = "per_minute", "per_day", "spend", "help_only"
QUOTA_CLASSES = (PER_MINUTE, PER_DAY, SPEND, HELP_ONLY)
_SPEND_LIMIT = re.compile(r"spend limit of (\$[\d,.]+ per [^.]*?)(?:\.|$)", re.IGNORECASE)
_TIER = re.compile(r"Tier\s*(\d+)", re.IGNORECASE)


def quota_error(code: int, status: str | None, message: str, body: Any) -> GeminiCallError:
    """The GeminiCallError of a 429 with this ``message`` and parsed ``body``."""
    details = error_details(body)
    quota_ids = [
        str(violation.get("quotaId", ""))
        for detail in details
        if _is(detail, "QuotaFailure")
        for violation in detail.get("violations") or []
        if isinstance(violation, dict)
    ]
    delay = retry_delay(body)
    said = f"Gemini answered {code} {status}: {message}"
    named = f" (quota {', '.join(quota_ids)})" if quota_ids else ""
    if any("spend" in quota.lower() for quota in quota_ids) or "spend limit" in message.lower():
        return GeminiCallError(
            "spend_limit_exceeded",
            f"Gemini refused the call: the project's spend limit{_spend_limit(message, quota_ids)}"
            f" is reached{named}. Raise the spend cap in AI Studio, or pace dollars with "
            'VISIONQ_RATE_LIMITS (e.g. {"*": {"usd": 10}}); retried once the window allows. '
            f"{said}",
            http_status=code,
            retryable=True,
            retry_delay_s=delay if delay is not None else SPEND_WINDOW_S,
            quota_class=SPEND,
        )
    daily = [quota for quota in quota_ids if "PerDay" in quota]
    only_daily = bool(daily) and len(daily) == len(quota_ids)
    if only_daily and (delay is None or delay >= LONG_DELAY_S):
        return daily_quota_error(said, daily, http_status=code, retry_delay_s=delay)
    text = said + named
    quota_class = PER_DAY if only_daily else PER_MINUTE
    if not quota_ids and delay is None:
        # Help-only (or bare) bodies: nothing says which quota or for how long.
        quota_class = HELP_ONLY
        text += (
            " (no quota named, no retry delay: retried with backoff; if it persists, check "
            "the project's rate limits in AI Studio or pace calls with VISIONQ_RATE_LIMITS)"
        )
    return GeminiCallError(
        f"gemini_{(status or 'error').lower()}",
        text,
        http_status=code,
        retryable=True,
        retry_delay_s=delay,
        daily_quota=bool(daily),
        quota_class=quota_class,
    )


def daily_quota_error(
    said: str, quota_ids: list[str], *, http_status: int | None, retry_delay_s: float | None
) -> GeminiCallError:
    """The job-ending error of a used-up per-day quota."""
    return GeminiCallError(
        "daily_quota_exhausted",
        f"{said} (daily quota {', '.join(quota_ids)} is used up; it resets at midnight "
        "Pacific time: submit again then, or raise the quota)",
        http_status=http_status,
        retry_delay_s=retry_delay_s,
        daily_quota=True,
        quota_class=PER_DAY,
    )


def _spend_limit(message: str, quota_ids: list[str]) -> str:
    """ " of $10.00 per 10 minutes for Tier 1" as far as the body says it, else ""."""
    found = _SPEND_LIMIT.search(message)
    if found:
        return f" of {found.group(1).strip()}"
    tier = next((m.group(1) for q in quota_ids if (m := _TIER.search(q))), None)
    return f" (Tier {tier})" if tier else ""


def _is(detail: dict[str, Any], name: str) -> bool:
    return str(detail.get("@type", "")).endswith(f"google.rpc.{name}")


def error_details(body: Any) -> list[dict[str, Any]]:
    """The ``error.details`` objects of a Google error body (empty when absent or odd)."""
    error = body.get("error", body) if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return [item for item in details if isinstance(item, dict)] if isinstance(details, list) else []


def retry_delay(body: Any) -> float | None:
    """The RetryInfo delay of an error body, in seconds (None when it has none)."""
    found = (seconds(d.get("retryDelay")) for d in error_details(body) if _is(d, "RetryInfo"))
    return next(found, None)


def seconds(value: Any) -> float | None:
    """A google.protobuf.Duration in JSON ("26s", "0.5s") as seconds."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        result = float(value[:-1])
    except ValueError:
        return None
    return result if result >= 0 else None
