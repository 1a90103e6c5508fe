"""When to call Gemini again after a failed call, and after how long.

One retry layer only: the SDK's own retries are off (worker/gemini.py makes one attempt per
call). Transient failures (429, 5xx, timeouts, connection errors) are retried with
exponential backoff and full jitter, never sooner than the RetryInfo delay Gemini asked for,
within a cap on attempts per job and a deadline for the whole job. Everything else fails
the job at once with its cause.

Per-day quotas (see worker/quotas.py for how each 429 body is read): a 429 naming only
per-day quotas with no RetryInfo or a long one ends the job ``daily_quota_exhausted`` at
once. One naming per-day and per-minute quotas together with a short RetryInfo (what the
free tier sends when either runs out) is retried after that delay; only when
``DAILY_REFUSALS`` attempts in a row, spread over more than a per-minute window
(``MINUTE_WINDOW_S``), are refused naming a per-day quota does the job end
``daily_quota_exhausted``: a per-minute quota would have come back by then, so the day's
quota is what refuses, and it returns only at midnight Pacific. Refusals within one minute
prove nothing: the per-minute quota alone explains them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from visionq.models.settings import Settings
from visionq.worker.errors import GeminiCallError

# Attempts refused in a row by 429s naming a per-day quota before the job gives up, and
# the time those refusals must span: longer than a per-minute quota's window.
DAILY_REFUSALS = 3
MINUTE_WINDOW_S = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    max_delay_s: float
    deadline_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.max_attempts,
            base_s=settings.retry_base_s,
            max_delay_s=settings.retry_max_delay_s,
            deadline_s=settings.job_deadline_s,
        )

    def backoff(
        self, attempt: int, uniform: Callable[[float, float], float] = random.uniform
    ) -> float:
        """Full jitter: a random delay up to base * 2^(attempt-1), capped (AWS's advice)."""
        ceiling = min(self.max_delay_s, self.base_s * 2 ** min(attempt - 1, 30))
        return uniform(0.0, ceiling)


@dataclass(frozen=True)
class Decision:
    """Retry after ``delay_s`` seconds, or give up with ``reason`` (None when retrying)."""

    delay_s: float | None
    reason: str | None = None
    # The job's error code when it is not the error's own (a daily quota found used up).
    code: str | None = None

    @property
    def retry(self) -> bool:
        return self.delay_s is not None


def decide(
    policy: RetryPolicy,
    error: GeminiCallError,
    *,
    attempt: int,
    remaining_s: float,
    daily_refusals: int = 0,
    daily_refused_for_s: float = 0.0,
    uniform: Callable[[float, float], float] = random.uniform,
) -> Decision:
    """Whether attempt number ``attempt`` (1-based, of the job) that failed with ``error`` is
    followed by another, ``remaining_s`` seconds before the job's deadline.

    ``daily_refusals`` counts the attempts in a row, this one included, refused by a 429
    naming a per-day quota, over ``daily_refused_for_s`` seconds since the first of them.
    """
    if not error.retryable:
        return Decision(None)
    day_refuses = daily_refusals >= DAILY_REFUSALS and daily_refused_for_s > MINUTE_WINDOW_S
    if error.daily_quota and day_refuses:
        return Decision(
            None,
            f"{daily_refusals} attempts in a row over {daily_refused_for_s:.0f} s were refused "
            "naming a per-day quota: it is used up until midnight Pacific time; submit again "
            "then, or raise the quota",
            code="daily_quota_exhausted",
        )
    if attempt >= policy.max_attempts:
        named = (
            "; the refusals named a per-day quota, which returns at midnight Pacific if it is "
            "what ran out"
            if error.daily_quota
            else ""
        )
        return Decision(None, f"gave up after {attempt} attempts (VISIONQ_MAX_ATTEMPTS){named}")
    delay = policy.backoff(attempt, uniform)
    if error.retry_delay_s is not None:
        # Gemini said when capacity returns; asking sooner only earns another 429.
        delay = max(delay, error.retry_delay_s)
    if delay >= remaining_s:
        return Decision(
            None,
            f"gave up after {attempt} attempts: the next one (in {delay:.1f} s) would pass "
            "the job's deadline (VISIONQ_JOB_DEADLINE_S)",
        )
    return Decision(delay)
