"""A window's quota is not admitted in one burst: in any second the limiter admits at most
twice the window's average rate (requests and tokens), so calls reach Gemini spread out,
while the long window's total still reaches the quota (issue 23 point 4: <= 0.1% 429s).
Real Redis."""

from __future__ import annotations

import threading

import redis

from tests.integration.limiter_fixtures import client, prefix, redis_url
from visionq.worker.ratelimit import GeminiRateLimiter, ModelQuota

__all__ = ["client", "prefix", "redis_url"]  # fixtures used by this module

MODEL = "gemini-test"
FAR = 1e12  # a deadline never reached


def test_a_burst_of_threads_is_spread_and_reaches_the_quota(
    client: redis.Redis, prefix: str
) -> None:
    # 24 a 6 s window: 4 a second on average, at most 8 in any second.
    limiter = GeminiRateLimiter(
        client, {MODEL: ModelQuota(rpm=24, tpm=None)}, window_s=6.0, margin_s=0.0, prefix=prefix
    )
    admitted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if len(admitted) >= 24:
                    return
                admitted.append(0)
            limiter.acquire(MODEL, 1, deadline=FAR)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log, _ = limiter.keys(MODEL)
    entries: list[tuple[bytes, float]] = client.zrange(log, 0, -1, withscores=True)  # type: ignore[assignment]
    scores = sorted(score for _, score in entries)
    assert len(scores) == 24, "the long window's total reaches the quota"
    # Redis TIME in ms: an entry counts in the short window while now - score < 1000.
    for score in scores:
        in_second = [s for s in scores if score - 1000 < s <= score]
        assert len(in_second) <= 8, (score, scores)
    assert scores[-1] - scores[0] >= 2000, "24 calls at <= 8 a second span >= 2 s"


def test_tokens_are_spread_too(client: redis.Redis, prefix: str) -> None:
    # 600 tokens a 6 s window: at most 200 in any second.
    limiter = GeminiRateLimiter(
        client, {MODEL: ModelQuota(rpm=None, tpm=600)}, window_s=6.0, margin_s=0.0, prefix=prefix
    )
    assert limiter.try_acquire(MODEL, 100) == 0.0
    assert limiter.try_acquire(MODEL, 100) == 0.0
    wait = limiter.try_acquire(MODEL, 100)
    assert 0 < wait <= 1.001, "the third waits for the short window, not the long one"
    # A call larger than the short cap runs alone in its second, never refused for ever.
    other = GeminiRateLimiter(
        client, {MODEL: ModelQuota(rpm=None, tpm=600)}, window_s=6.0, margin_s=0.0,
        prefix=prefix + ":big",
    )  # fmt: skip
    assert other.try_acquire(MODEL, 300) == 0.0
    assert 0 < other.try_acquire(MODEL, 1) <= 1.001


def test_short_windows_are_not_smoothed(client: redis.Redis, prefix: str) -> None:
    # A window of 1 s or less: twice its rate over 1 s is more than the quota, no effect.
    limiter = GeminiRateLimiter(
        client, {MODEL: ModelQuota(rpm=20, tpm=None)}, window_s=1.0, margin_s=0.0, prefix=prefix
    )
    assert [limiter.try_acquire(MODEL, 1) for _ in range(20)] == [0.0] * 20
    assert limiter.try_acquire(MODEL, 1) > 0
