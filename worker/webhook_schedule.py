"""When to try a failed webhook delivery again (pure; the database is the scheduler).

Standard Webhooks' example schedule cut at a retry window (24 h by default): after the n-th
failed attempt wait ``delays_s[n-1]`` (the last delay repeats), times a ±20 % jitter so that
a receiver coming back is not hit by every delivery at once; a longer ``Retry-After`` from the
receiver is honoured. An attempt that would fall after the window's end is moved to the end
once, so the last try happens at the edge of the window; a failure at or after the end is
final.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

JITTER = (0.8, 1.2)


def next_time(
    *,
    attempts: int,
    window_started_at: datetime,
    now: datetime,
    delays_s: Sequence[float],
    window_s: float,
    retry_after_s: float | None,
    uniform: Callable[[float, float], float] = random.uniform,
) -> datetime | None:
    """The next attempt's time after ``attempts`` failed ones (the latest at ``now``), or None
    when the delivery has failed for good (its window is over)."""
    if not delays_s:
        raise ValueError("the retry schedule has no delays; set VISIONQ_WEBHOOK_RETRY_DELAYS_S")
    window_end = window_started_at + timedelta(seconds=window_s)
    if now >= window_end:
        return None
    step = delays_s[min(max(attempts, 1), len(delays_s)) - 1]
    delay = step * uniform(*JITTER)
    if retry_after_s is not None and retry_after_s > delay:
        delay = retry_after_s
    return min(now + timedelta(seconds=delay), window_end)
