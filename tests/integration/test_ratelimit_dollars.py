"""VISIONQ_RATE_LIMITS paces estimated dollars per window (Gemini's spend limits are
rolling dollars per 10 minutes), per model or for all models together ("*"), against a
real Redis."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import redis

from tests.integration.limiter_fixtures import client, prefix, redis_url
from visionq.worker.ratelimit import (
    GeminiRateLimiter,
    RateLimitTimeout,
    parse_quotas,
)

__all__ = ["client", "prefix", "redis_url"]  # fixtures used by this module

pytestmark = pytest.mark.integration


def test_all_models_share_one_dollar_budget_per_window(client: redis.Redis, prefix: str) -> None:
    # $0.010 per 1 s window for all models together; calls estimated at $0.004 each.
    limiter = GeminiRateLimiter(
        client, parse_quotas({"*": {"usd": "0.010", "window_s": 1}}), margin_s=0, prefix=prefix
    )
    start = time.monotonic()
    assert limiter.try_acquire("gemini-3.6-flash", 100, Decimal("0.004")) == 0.0
    assert limiter.try_acquire("gemini-3.8-flash", 100, Decimal("0.004")) == 0.0
    # A third would make $0.012 in the window, whichever model it is for.
    wait = limiter.try_acquire("gemini-3.5-flash-lite", 100, Decimal("0.004"))
    elapsed = time.monotonic() - start
    assert 1.0 - elapsed - 0.05 <= wait <= 1.01
    assert limiter.try_acquire("gemini-3.6-flash", 100, Decimal("0.002")) == 0.0, "fits exactly"
    _, total = limiter.usd_keys("*")
    assert int(client.get(total) or 0) == 10_000_000  # nano-dollars
    time.sleep(wait + 0.01)
    assert limiter.try_acquire("gemini-3.5-flash-lite", 100, Decimal("0.004")) == 0.0


def test_a_model_budget_and_the_shared_one_both_apply(client: redis.Redis, prefix: str) -> None:
    quotas = parse_quotas({"a": {"usd": "0.005"}, "*": {"usd": "0.008"}})
    # No smoothing (test_ratelimit_smooth.py): the window's budget at once.
    limiter = GeminiRateLimiter(client, quotas, margin_s=0, prefix=prefix, smooth_ms=0)
    assert limiter.try_acquire("a", 0, Decimal("0.004")) == 0.0
    assert limiter.try_acquire("a", 0, Decimal("0.002")) > 0, "a's own $0.005"
    assert limiter.try_acquire("b", 0, Decimal("0.004")) == 0.0
    assert limiter.try_acquire("b", 0, Decimal("0.001")) > 0, "everyone's $0.008"
    # Refused by "*" after "a" admitted it: "a" took it back, so its log holds one call.
    log, total = limiter.usd_keys("a")
    assert client.zcard(log) == 1 and int(client.get(total) or 0) == 4_000_000
    # The default dollar window is Gemini's 10 minutes.
    assert 598 < limiter.try_acquire("a", 0, Decimal("0.002")) <= 600.01


def test_a_refusal_by_dollars_takes_back_the_request_it_counted(
    client: redis.Redis, prefix: str
) -> None:
    quotas = parse_quotas({"m": {"rpm": 3, "usd": "0.01", "window_s": 30}})
    limiter = GeminiRateLimiter(client, quotas, margin_s=0, prefix=prefix, smooth_ms=0)
    assert limiter.try_acquire("m", 10, Decimal("0.009")) == 0.0
    assert limiter.try_acquire("m", 10, Decimal("0.009")) > 0
    assert limiter.try_acquire("m", 10, Decimal("0.0005")) == 0.0
    log, tokens = limiter.keys("m")
    assert client.zcard(log) == 2 and int(client.get(tokens) or 0) == 20


def test_acquire_waits_for_dollars_until_the_deadline(client: redis.Redis, prefix: str) -> None:
    limiter = GeminiRateLimiter(
        client, parse_quotas({"*": {"usd": 1, "window_s": 0.4}}), margin_s=0, prefix=prefix
    )
    limiter.acquire("m", 0, usd=Decimal("0.8"), deadline=time.monotonic() + 5)
    start = time.monotonic()
    limiter.acquire("m", 0, usd=Decimal("0.8"), deadline=start + 5)
    assert time.monotonic() - start > 0.2, "waited for the first call's dollars to leave"
    with pytest.raises(RateLimitTimeout):
        limiter.acquire("m", 0, usd=Decimal("0.8"), deadline=time.monotonic() + 0.05)
    # A model without any quota that applies is never paced.
    free = GeminiRateLimiter(client, parse_quotas({"x": {"usd": 1}}), prefix=prefix + ":free")
    assert free.try_acquire("y", 10**9, Decimal(10**6)) == 0.0
