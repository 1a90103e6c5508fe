"""Per-API-key submit rate limit: GCRA (generic cell rate algorithm) in Redis.

One key per API key, ``<prefix>:<key id>``, holds its theoretical arrival time (TAT, Redis
server time in µs). A request is allowed when ``TAT + interval - burst * interval <= now``;
allowing it moves the TAT one interval later. So ``burst`` requests pass at once, then one
per interval. The key expires when the TAT is reached, as by then it equals a missing key.
"""

from __future__ import annotations

import math

import redis

__all__ = ["SubmitThrottle"]

# KEYS[1] TAT. ARGV: emission interval µs, burst.
# Returns 0 when allowed (and recorded), else µs until a request would be allowed.
_GCRA_LUA = """
-- TIME followed by writes needs effects replication: the default from Redis 5 (the only
-- mode from 7); older servers must be asked for it.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
-- µs since the epoch (~1.7e15) are still exact integers in Lua's doubles.
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then return allow_at - now end
-- '%.0f' since tostring() keeps only 14 significant digits.
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
           'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000)))
return 0
"""


class SubmitThrottle:
    """Allows ``burst`` submissions at once per API key, then ``rate_per_s`` per second."""

    def __init__(
        self,
        # Unparameterised: redis-py's own Redis is not generic, the types-redis stubs' one is
        # (the ignore matters only where those stubs are installed).
        redis: redis.Redis,  # type: ignore[type-arg,unused-ignore]
        *,
        rate_per_s: float,
        burst: int,
        prefix: str = "visionq:submit",
    ) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError(f"rate_per_s must be a positive number, got {rate_per_s!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be a positive integer, got {burst!r}")
        self._interval_us = round(1_000_000 / rate_per_s)
        if self._interval_us < 1:
            raise ValueError(f"rate_per_s above 1,000,000 is not supported, got {rate_per_s!r}")
        self._burst = burst
        self._prefix = prefix
        self._script = redis.register_script(_GCRA_LUA)

    def key(self, key_id: int | str) -> str:
        """The Redis key holding ``key_id``'s theoretical arrival time."""
        return f"{self._prefix}:{key_id}"

    def check(self, key_id: int | str) -> float:
        """Count one submission by ``key_id`` if allowed.

        Returns 0.0 when allowed, else the seconds until the next one would be (for
        Retry-After; nothing is counted). Redis errors propagate: the caller decides whether
        to fail open.
        """
        wait_us = int(self._script(keys=[self.key(key_id)], args=[self._interval_us, self._burst]))
        return wait_us / 1_000_000
