"""The Gemini sliding-log rate limiter (requests, tokens, acquire) and its quotas, real Redis."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from tests.integration.limiter_fixtures import (
    MODEL,
    _unreachable_redis,
    client,
    prefix,
    redis_url,
)
from visionq.worker.ratelimit import GeminiRateLimiter, ModelQuota, RateLimitTimeout, parse_quotas

__all__ = ["client", "prefix", "redis_url"]  # fixtures used by this module

pytestmark = pytest.mark.integration


def test_server_replicates_script_effects(client: redis.Redis) -> None:
    # TIME before writes in a script needs effects replication, the default from Redis 5.
    major = int(str(client.info("server")["redis_version"]).split(".")[0])
    assert major >= 5


# --- Gemini sliding log: requests ------------------------------------------------------


def test_rpm_admits_exactly_then_waits_for_oldest(client: redis.Redis, prefix: str) -> None:
    limiter = GeminiRateLimiter(
        client, {MODEL: ModelQuota(rpm=3, tpm=None)}, window_s=0.5, margin_s=0.05, prefix=prefix
    )
    log, tokens = limiter.keys(MODEL)
    first = time.monotonic()
    assert limiter.try_acquire(MODEL, 1) == 0.0
    time.sleep(0.1)
    assert limiter.try_acquire(MODEL, 1) == 0.0
    assert limiter.try_acquire(MODEL, 1) == 0.0
    wait = limiter.try_acquire(MODEL, 1)
    # The oldest entry leaves 0.55 s (+1 ms rounding) after it was admitted.
    expected = 0.551 - (time.monotonic() - first)
    assert expected - 0.01 <= wait <= expected + 0.01
    assert client.zcard(log) == 3, "a refusal records nothing"

    for key in (log, tokens):
        assert 0 < client.pttl(key) <= 1100, "keys expire after ~2 windows"

    time.sleep(wait)
    assert limiter.try_acquire(MODEL, 1) == 0.0, "the oldest has left: one more fits"
    # The next to leave is the second entry, admitted 0.1 s after the first.
    second_wait = limiter.try_acquire(MODEL, 1)
    assert 0.07 <= second_wait <= 0.11


def test_idle_model_leaves_no_keys(client: redis.Redis, prefix: str) -> None:
    limiter = GeminiRateLimiter(
        client, {MODEL: ModelQuota(rpm=5, tpm=100)}, window_s=0.1, margin_s=0.0, prefix=prefix
    )
    assert limiter.try_acquire(MODEL, 10) == 0.0
    time.sleep(0.25)
    assert client.exists(*limiter.keys(MODEL)) == 0


def test_unknown_and_unlimited_models_do_not_touch_redis() -> None:
    dead = _unreachable_redis()
    quotas = {MODEL: ModelQuota(rpm=1, tpm=1), "free": ModelQuota(rpm=None, tpm=None)}
    limiter = GeminiRateLimiter(dead, quotas)
    for _ in range(100):
        assert limiter.try_acquire("gemini-unknown", 10**9) == 0.0
        assert limiter.try_acquire("free", 10**9) == 0.0
    limiter.acquire("gemini-unknown", 10**9, deadline=0.0)
    with pytest.raises(redis.ConnectionError):
        limiter.try_acquire(MODEL, 1)
    dead.close()


# --- Gemini sliding log: tokens ---------------------------------------------------------


def test_tpm_respected(client: redis.Redis, prefix: str) -> None:
    limiter = GeminiRateLimiter(
        client, {MODEL: ModelQuota(rpm=None, tpm=100)}, window_s=0.5, margin_s=0.0, prefix=prefix
    )
    log, tokens = limiter.keys(MODEL)
    assert limiter.try_acquire(MODEL, 60) == 0.0
    assert limiter.try_acquire(MODEL, 50) > 0
    assert limiter.try_acquire(MODEL, 40) == 0.0, "exactly the quota is allowed"
    assert limiter.try_acquire(MODEL, 1) > 0
    assert limiter.try_acquire(MODEL, 0) == 0.0, "a request without tokens adds none"
    assert int(client.get(tokens) or 0) == 100
    assert client.zcard(log) == 3


def test_tpm_wait_is_for_the_entry_that_makes_room(client: redis.Redis, prefix: str) -> None:
    limiter = GeminiRateLimiter(
        client, {MODEL: ModelQuota(rpm=None, tpm=100)}, window_s=0.6, margin_s=0.0, prefix=prefix
    )
    first = time.monotonic()
    for size in (30, 30, 40):
        assert limiter.try_acquire(MODEL, size) == 0.0
        time.sleep(0.1)
    # 50 tokens need the first two entries (30 + 30) gone: the second leaves 0.7 s after first.
    wait = limiter.try_acquire(MODEL, 50)
    expected = 0.1 + 0.601 - (time.monotonic() - first)
    assert expected - 0.015 <= wait <= expected + 0.01
    # 20 tokens need only the first gone.
    wait_small = limiter.try_acquire(MODEL, 20)
    assert wait - 0.115 <= wait_small <= wait - 0.085


def test_request_larger_than_tpm_runs_alone(client: redis.Redis, prefix: str) -> None:
    limiter = GeminiRateLimiter(
        client, {MODEL: ModelQuota(rpm=None, tpm=100)}, window_s=0.3, margin_s=0.0, prefix=prefix
    )
    assert limiter.try_acquire(MODEL, 150) == 0.0, "an empty window admits it"
    wait = limiter.try_acquire(MODEL, 1)
    assert 0.25 < wait <= 0.31, "nothing else until it leaves"
    time.sleep(wait)
    assert limiter.try_acquire(MODEL, 10) == 0.0
    time.sleep(0.1)
    # Not alone now: it must wait for the 10-token entry to leave.
    wait_big = limiter.try_acquire(MODEL, 150)
    assert 0.15 < wait_big <= 0.21
    time.sleep(wait_big)
    assert limiter.try_acquire(MODEL, 150) == 0.0


def test_both_quotas_wait_for_the_later(client: redis.Redis, prefix: str) -> None:
    limiter = GeminiRateLimiter(
        client, {MODEL: ModelQuota(rpm=2, tpm=100)}, window_s=0.5, margin_s=0.0, prefix=prefix
    )
    assert limiter.try_acquire(MODEL, 5) == 0.0
    time.sleep(0.2)
    assert limiter.try_acquire(MODEL, 90) == 0.0
    # 20 more tokens: rpm frees when the first entry leaves (~0.3 s), but the 5 tokens it
    # frees are not enough, so the second must leave too (~0.5 s).
    assert 0.45 < limiter.try_acquire(MODEL, 20) <= 0.51
    assert 0.25 < limiter.try_acquire(MODEL, 1) <= 0.31


# --- acquire ----------------------------------------------------------------------------


def test_acquire_sleeps_until_admitted(client: redis.Redis, prefix: str) -> None:
    limiter = GeminiRateLimiter(
        client, {MODEL: ModelQuota(rpm=1, tpm=None)}, window_s=0.3, margin_s=0.0, prefix=prefix
    )
    start = time.monotonic()
    limiter.acquire(MODEL, 1, deadline=start + 5)
    limiter.acquire(MODEL, 1, deadline=start + 5)
    assert 0.3 <= time.monotonic() - start < 0.5


def test_acquire_deadline_raises_without_sleeping(client: redis.Redis, prefix: str) -> None:
    limiter = GeminiRateLimiter(
        client, {MODEL: ModelQuota(rpm=1, tpm=None)}, window_s=10, margin_s=0.0, prefix=prefix
    )
    limiter.acquire(MODEL, 1, deadline=time.monotonic() + 1)
    sleeps: list[float] = []
    with pytest.raises(RateLimitTimeout) as caught:
        limiter.acquire(MODEL, 1, deadline=time.monotonic() + 2, sleep=sleeps.append)
    assert sleeps == [], "a wait past the deadline is not slept"
    assert caught.value.model == MODEL
    assert 9.5 < caught.value.wait_s <= 10.01


def test_acquire_deadline_after_sleeping(client: redis.Redis, prefix: str) -> None:
    # Another client keeps taking the slot, so the sleeper never gets it before its deadline.
    limiter = GeminiRateLimiter(
        client, {MODEL: ModelQuota(rpm=1, tpm=None)}, window_s=0.2, margin_s=0.0, prefix=prefix
    )
    limiter.acquire(MODEL, 1, deadline=time.monotonic() + 1)
    sleeps: list[float] = []

    def sleep_while_another_takes_the_slot(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)
        limiter.acquire(MODEL, 1, deadline=time.monotonic() + 1)

    with pytest.raises(RateLimitTimeout):
        limiter.acquire(
            MODEL, 1, deadline=time.monotonic() + 0.5, sleep=sleep_while_another_takes_the_slot
        )
    assert 1 <= len(sleeps) <= 3
    assert all(0.15 < s <= 0.26 for s in sleeps), sleeps


# --- parse_quotas -----------------------------------------------------------------------


def test_parse_quotas_accepts_valid() -> None:
    raw = {
        "gemini-2.5-flash": {"rpm": 1000, "tpm": 1_000_000},
        "gemini-2.5-pro": {"rpm": 150},
        "gemini-2.5-flash-lite": {"tpm": 4_000_000, "rpm": None},
    }
    assert parse_quotas(raw) == {
        "gemini-2.5-flash": ModelQuota(rpm=1000, tpm=1_000_000),
        "gemini-2.5-pro": ModelQuota(rpm=150, tpm=None),
        "gemini-2.5-flash-lite": ModelQuota(rpm=None, tpm=4_000_000),
    }
    assert parse_quotas({}) == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"": {"rpm": 1}}, "non-empty strings"),
        ({"m": 5}, r"quota for 'm': expected an object"),
        ({"m": {"rpm": 1, "rqm": 2}}, r"quota for 'm': unknown key\(s\) 'rqm'"),
        ({"m": {}}, r"quota for 'm': set 'rpm', 'tpm' and/or 'usd'"),
        ({"m": {"window_s": 60}}, r"quota for 'm': set 'rpm', 'tpm' and/or 'usd'"),
        ({"*": {"usd": 0}}, r"quota for '\*': 'usd' must be a positive number"),
        ({"*": {"usd": "ten"}}, r"'usd' must be a positive number or null, got 'ten'"),
        ({"*": {"usd": True}}, r"'usd' must be a positive number"),
        ({"*": {"usd": 10, "window_s": 0}}, r"'window_s' must be a positive number"),
        ({"m": {"rpm": 0}}, r"quota for 'm': 'rpm' must be a positive integer"),
        ({"m": {"tpm": -5}}, r"'tpm' must be a positive integer or null, got -5"),
        ({"m": {"rpm": 1.5}}, r"'rpm' must be a positive integer"),
        ({"m": {"rpm": "100"}}, r"'rpm' must be a positive integer"),
        ({"m": {"tpm": True}}, r"'tpm' must be a positive integer"),
    ],
)
def test_parse_quotas_errors(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_quotas(raw)


def test_limiter_rejects_bad_arguments(client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="window_s"):
        GeminiRateLimiter(client, {}, window_s=0)
    with pytest.raises(ValueError, match="margin_s"):
        GeminiRateLimiter(client, {}, margin_s=-1)
    with pytest.raises(ValueError, match="tokens"):
        GeminiRateLimiter(client, {MODEL: ModelQuota(rpm=1, tpm=None)}).try_acquire(MODEL, -1)
