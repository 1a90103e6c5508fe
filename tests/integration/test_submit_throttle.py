"""The API's GCRA submit throttle (visionq.api.throttle.SubmitThrottle) against a real Redis."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from tests.integration.limiter_fixtures import _unreachable_redis, client, prefix, redis_url
from visionq.api.throttle import SubmitThrottle

__all__ = ["client", "prefix", "redis_url"]  # fixtures used by this module

pytestmark = pytest.mark.integration


def test_gcra_burst_then_refusal_then_refill(client: redis.Redis, prefix: str) -> None:
    throttle = SubmitThrottle(client, rate_per_s=10, burst=3, prefix=prefix)
    start = time.monotonic()
    assert [throttle.check(1) for _ in range(3)] == [0.0, 0.0, 0.0]
    retry = throttle.check(1)
    elapsed = time.monotonic() - start
    # After a burst of 3 at ~start, the next slot opens one interval (0.1 s) after start.
    assert 0.1 - elapsed - 0.01 <= retry <= 0.1
    # Refusals are not counted: otherwise the sleep below would not be enough.
    assert throttle.check(1) > 0
    assert throttle.check("other-key") == 0.0, "keys are independent"

    time.sleep(retry + 0.005)
    assert throttle.check(1) == 0.0
    assert throttle.check(1) > 0, "one interval refills one request only"

    ttl_ms = client.pttl(throttle.key(1))
    assert 0 < ttl_ms <= 300
    time.sleep(0.32)
    assert client.exists(throttle.key(1)) == 0, "a fully refilled key is gone"
    assert [throttle.check(1) > 0 for _ in range(4)] == [False, False, False, True]


def test_gcra_slow_rate_retry_after(client: redis.Redis, prefix: str) -> None:
    throttle = SubmitThrottle(client, rate_per_s=0.5, burst=1, prefix=prefix)
    assert throttle.check("k") == 0.0
    retry = throttle.check("k")
    assert 1.9 < retry <= 2.0


def test_gcra_redis_errors_propagate() -> None:
    dead = _unreachable_redis()
    throttle = SubmitThrottle(dead, rate_per_s=1, burst=1)
    with pytest.raises(redis.ConnectionError):
        throttle.check(1)
    dead.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate_per_s": 0, "burst": 1}, "rate_per_s"),
        ({"rate_per_s": float("inf"), "burst": 1}, "rate_per_s"),
        ({"rate_per_s": 1, "burst": 0}, "burst"),
        ({"rate_per_s": 1, "burst": 1.5}, "burst"),
    ],
)
def test_gcra_rejects_bad_settings(client: redis.Redis, kwargs: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SubmitThrottle(client, **kwargs)
