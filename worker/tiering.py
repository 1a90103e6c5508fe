"""What a flex call does after Gemini sheds it or it times out (pure: no clock, no I/O).

Flex is Gemini's half-price tier for work that may wait minutes: calls may be shed with a
503 (or refused with a 429) when capacity is short, and answers take 1-15 minutes. A job
in the flex lane asks again at flex while its deadline allows another flex call; when it
no longer does (or after VISIONQ_FLEX_MAX_SHEDS sheds, or a flex call that timed out) it
falls back to standard, with VISIONQ_FLEX_RESERVE_S kept before the deadline for that
standard call: the deadline holds. Other errors go through worker/retry.py as on standard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from visionq.models.settings import Settings
from visionq.vision.catalogue import ServiceTier
from visionq.vision.tiers import MIN_FLEX_CALL_S
from visionq.worker.errors import GeminiCallError

__all__ = [
    "FlexStep", "after_flex_error", "downgraded_message", "fallback_message", "flex_timeout",
    "is_shed", "lane_tier", "served_as",
]  # fmt: skip

# Codes of a flex call that Gemini did not serve for lack of capacity.
_SHED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class FlexStep:
    """``retry_flex`` after ``delay_s``; ``fallback`` to standard now; ``default``: the
    error is no flex matter (worker/retry.py decides). ``reason`` says why, for the attempt."""

    kind: Literal["retry_flex", "fallback", "default"]
    delay_s: float = 0.0
    reason: str = ""


def is_shed(exc: GeminiCallError) -> bool:
    """A flex call refused for capacity: 503 UNAVAILABLE, or a 429 that does not name a
    per-day quota (that one is a quota matter whatever the tier)."""
    return exc.http_status in _SHED_STATUSES and not exc.daily_quota


def _backoff(sheds: int, settings: Settings, asked: float | None) -> float:
    # Deterministic (the caller's rhythm is the shed rate): base * 2^(n-1), capped, never
    # sooner than Gemini's RetryInfo.
    delay = min(settings.retry_max_delay_s, settings.retry_base_s * 2.0 ** min(sheds - 1, 30))
    return max(delay, asked or 0.0)


def after_flex_error(
    exc: GeminiCallError,
    *,
    now: datetime,
    deadline_at: datetime | None,
    sheds: int,
    settings: Settings,
    expected_call_s: float | None = None,
) -> FlexStep:
    """The next step of a flex job whose call failed with ``exc``; ``sheds`` counts the
    sheds so far, this one included. A shed is asked again at flex while the retry delay
    plus one flex call (``expected_call_s``, default the flex prior of
    VISIONQ_TIER_PRIOR_S) still ends VISIONQ_FLEX_RESERVE_S before ``deadline_at``."""
    if exc.code == "gemini_timeout":
        return FlexStep("fallback", reason="the flex call timed out")
    if not is_shed(exc):
        return FlexStep("default")
    if sheds > settings.flex_max_sheds:
        return FlexStep(
            "fallback",
            reason=f"shed by Gemini ({exc.http_status}) {sheds} times "
            f"(VISIONQ_FLEX_MAX_SHEDS={settings.flex_max_sheds})",
        )
    delay = _backoff(sheds, settings, exc.retry_delay_s)
    call_s = expected_call_s
    if call_s is None:
        call_s = float(settings.tier_prior_s.get(ServiceTier.FLEX, settings.flex_timeout_s))
    if deadline_at is not None:
        left = (deadline_at - now).total_seconds() - settings.flex_reserve_s
        if delay + call_s > left:
            return FlexStep(
                "fallback",
                reason=f"shed by Gemini ({exc.http_status}) {sheds} times; another flex "
                f"call would not end {settings.flex_reserve_s:g} s before the deadline",
            )
    return FlexStep("retry_flex", delay_s=delay, reason=f"shed by Gemini ({exc.http_status})")


def flex_timeout(now: datetime, deadline_at: datetime | None, settings: Settings) -> float | None:
    """The timeout of the next flex call: VISIONQ_FLEX_TIMEOUT_S, cut so the call ends
    VISIONQ_FLEX_RESERVE_S before the deadline; None when too little time is left for a
    flex call at all (the job goes to standard at once)."""
    if deadline_at is None:
        return settings.flex_timeout_s
    left = (deadline_at - now).total_seconds() - settings.flex_reserve_s
    if left < MIN_FLEX_CALL_S:
        return None
    return min(settings.flex_timeout_s, left)


def lane_tier(lane: str | None) -> ServiceTier:
    """The tier a sync run asks for: the job's lane; standard for a batch-lane job the sync
    lane runs (released from a Gemini batch) or an unknown value."""
    try:
        tier = ServiceTier(lane or "standard")
    except ValueError:
        return ServiceTier.STANDARD
    return ServiceTier.STANDARD if tier is ServiceTier.BATCH else tier


def served_as(header: str | None, asked: ServiceTier) -> ServiceTier:
    """The tier a call was served (and is billed) at: Gemini's x-gemini-service-tier, else
    the tier asked (a value this code does not know is taken as the tier asked)."""
    try:
        return ServiceTier(header) if header else asked
    except ValueError:
        return asked


def downgraded_message(served: ServiceTier) -> str:
    """The ``priority_downgraded`` warning."""
    return (
        f"Gemini served this call at {served.value} (over the priority limit); billed at "
        f"{served.value}."
    )


def fallback_message(reason: str) -> str:
    """The ``flex_fallback`` warning."""
    return (
        f"The flex call could not be used ({reason}); the job was answered at standard to "
        "hold its deadline, and billed at standard."
    )
