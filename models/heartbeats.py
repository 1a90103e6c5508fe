"""Worker heartbeats in Redis: how /readyz knows a worker is running.

One sorted set maps each worker process to when it last beat, in Redis's own clock (its
TIME command), so the workers' and the API's clocks never need to agree. Workers beat from
a thread (worker/heartbeat.py); the API counts the entries recent enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

KEY = "visionq:workers"
# An entry older than this is a worker that died without saying goodbye: dropped.
FORGET_AFTER_S = 86_400.0


def redis_now(client: redis.Redis) -> float:
    """Seconds since the epoch by the Redis server's clock."""
    seconds, microseconds = client.time()
    return float(seconds) + microseconds / 1e6


def beat(client: redis.Redis, name: str) -> None:
    """Record that worker ``name`` is alive now (and forget long-dead workers)."""
    now = redis_now(client)
    with client.pipeline(transaction=False) as pipe:
        pipe.zadd(KEY, {name: now})
        pipe.zremrangebyscore(KEY, "-inf", now - FORGET_AFTER_S)
        pipe.execute()


def forget(client: redis.Redis, name: str) -> None:
    """Remove worker ``name`` (it is stopping): readiness does not count it any more."""
    client.zrem(KEY, name)


@dataclass(frozen=True)
class Sighting:
    """Workers seen within the window asked for, and how long ago any worker was last seen
    (None: never, or too long ago to remember)."""

    recent: int
    last_seen_s_ago: float | None


def workers_seen(client: redis.Redis, within_s: float) -> Sighting:
    """How many workers beat within the last ``within_s`` seconds."""
    now = redis_now(client)
    recent = int(client.zcount(KEY, now - within_s, "+inf"))
    newest = client.zrevrange(KEY, 0, 0, withscores=True)
    last = max(0.0, now - float(newest[0][1])) if newest else None
    return Sighting(recent=recent, last_seen_s_ago=last)
