"""One Gemini rate limit shared by every worker process and thread: a sliding log in Redis.

Per model, at most ``rpm`` requests and ``tpm`` input tokens are admitted in any window of
``window_s + margin_s`` seconds. The margin absorbs the delay between admission here and the
request reaching Gemini, whose own window is ``window_s``.

Redis keys per model (the ``{model}`` hash tag keeps both in one Redis Cluster slot):

- ``<prefix>:{<model>}:log``: sorted set of admissions, score = Redis server time in ms,
  member = ``"<tokens>:<unique id>"``;
- ``<prefix>:{<model>}:tokens``: running sum of the tokens of the members of the log.

Both expire two windows after the last admission, so idle models leave nothing behind.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

__all__ = ["GeminiRateLimiter", "ModelQuota", "RateLimitTimeout", "parse_quotas"]

# Upper bound of the random delay added to each wait in `acquire`: workers refused together
# would otherwise all retry at the same millisecond and collide again.
_JITTER_S = 0.05

_QUOTA_KEYS = ("rpm", "tpm")

# KEYS[1] log (sorted set), KEYS[2] token sum.
# ARGV: window ms (margin included), rpm (-1 = none), tpm (-1 = none), tokens, member, ttl ms.
# Returns 0 when admitted (and recorded), else the wait in ms (nothing recorded).
#
# An entry scored s counts while now - s <= window, so it has surely left at s + window + 1:
# the millisecond truncation of TIME can then only make us wait longer, never admit early.
_SLIDING_LOG_LUA = """
-- TIME followed by writes needs effects replication: the default from Redis 5 (the only
-- mode from 7); older servers must be asked for it.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
local log, sum = KEYS[1], KEYS[2]

local function tokens_of(member)
  return tonumber(string.match(member, '^(%d+):'))
end

-- Only the expired members are read, so a call costs O(expired + log n).
local cutoff = '(' .. string.format('%.0f', now - window)
local expired = redis.call('ZRANGEBYSCORE', log, '-inf', cutoff)
local freed = 0
if #expired > 0 then
  for _, member in ipairs(expired) do freed = freed + tokens_of(member) end
  redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
end
local count = redis.call('ZCARD', log)
local used = 0
if count == 0 then
  -- Resets the sum whenever the log empties, so it cannot drift for ever.
  redis.call('DEL', sum)
elseif freed > 0 then
  used = redis.call('DECRBY', sum, freed)
else
  used = tonumber(redis.call('GET', sum)) or 0
end

local function leaves_at(score)
  return tonumber(score) + window + 1 - now
end

local wait = 0
if rpm >= 0 and count >= rpm then
  -- The (count - rpm + 1) oldest must leave to make room for one more.
  local idx = count - rpm
  local entry = redis.call('ZRANGE', log, idx, idx, 'WITHSCORES')
  wait = leaves_at(entry[2])
end

if tpm >= 0 and tokens > 0 and used + tokens > tpm then
  local excess = used + tokens - tpm
  -- Larger than the whole quota: it can only ever run with no other tokens in the window.
  if tokens > tpm then excess = used end
  if excess > 0 then
    -- Walk from the oldest until enough tokens would have left; pages keep replies small.
    local freeing, start, page_size, found = 0, 0, 64, nil
    while not found do
      local page = redis.call('ZRANGE', log, start, start + page_size - 1, 'WITHSCORES')
      if #page == 0 then break end
      for i = 1, #page, 2 do
        freeing = freeing + tokens_of(page[i])
        if freeing >= excess then
          found = page[i + 1]
          break
        end
      end
      start = start + page_size
    end
    if not found then
      -- The sum exceeds the log's members (it drifted): once all leave, the sum is reset.
      found = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')[2]
    end
    wait = math.max(wait, leaves_at(found))
  end
end

if wait > 0 then return wait end
redis.call('ZADD', log, now, ARGV[5])
redis.call('INCRBY', sum, tokens)
redis.call('PEXPIRE', log, ARGV[6])
redis.call('PEXPIRE', sum, ARGV[6])
return 0
"""


class RateLimitTimeout(TimeoutError):
    """The request could not be admitted before its deadline."""

    def __init__(self, model: str, wait_s: float) -> None:
        super().__init__(
            f"Gemini rate limit for {model!r}: next admission in {wait_s:.3f} s, after the deadline"
        )
        self.model = model
        self.wait_s = wait_s


def _check_limit(name: str, value: object) -> None:
    # bool is an int subclass, but `"rpm": true` is certainly a mistake.
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name!r} must be a positive integer or null, got {value!r}")


@dataclass(frozen=True)
class ModelQuota:
    """Limits of one model per window; None means unlimited."""

    rpm: int | None  # requests per window
    tpm: int | None  # input tokens per window

    def __post_init__(self) -> None:
        for name in _QUOTA_KEYS:
            _check_limit(name, getattr(self, name))

    @property
    def unlimited(self) -> bool:
        """Neither requests nor tokens are limited."""
        return self.rpm is None and self.tpm is None


def parse_quotas(raw: Mapping[str, Any]) -> dict[str, ModelQuota]:
    """Validate a JSON object like ``{"gemini-2.5-flash": {"rpm": 1000, "tpm": 1000000}}``.

    Each model takes ``rpm`` and/or ``tpm`` (positive integers; missing or null means
    unlimited). Raises ValueError naming the offending model and key.
    """
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"Gemini quotas must be a JSON object of model name -> quota, got {type(raw).__name__}"
        )
    quotas: dict[str, ModelQuota] = {}
    for model, spec in raw.items():
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"Gemini quotas: model names must be non-empty strings, got {model!r}")
        where = f"Gemini quota for {model!r}"
        if not isinstance(spec, Mapping):
            raise ValueError(
                f'{where}: expected an object like {{"rpm": 1000, "tpm": 1000000}}, got {spec!r}'
            )
        unknown = sorted(str(key) for key in spec if key not in _QUOTA_KEYS)
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                "allowed: 'rpm' (requests per window), 'tpm' (input tokens per window)"
            )
        if not spec:
            raise ValueError(f"{where}: set 'rpm' and/or 'tpm' (leave the model out for no limit)")
        try:
            quotas[model] = ModelQuota(rpm=spec.get("rpm"), tpm=spec.get("tpm"))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
    return quotas


class GeminiRateLimiter:
    """Admits Gemini calls per model within requests and input-token quotas, across processes.

    Exact sliding log: in any window of ``window_s + margin_s`` seconds of Redis server time,
    the admitted requests of a model never exceed its ``rpm`` and their tokens its ``tpm``.
    A single request with more tokens than ``tpm`` is admitted only when no other tokens are
    in the window (otherwise it could never run); it then blocks the model's token quota
    until it leaves the window.
    """

    def __init__(
        self,
        # Unparameterised: redis-py's own Redis is not generic, the types-redis stubs' one is
        # (the ignore matters only where those stubs are installed).
        redis: redis.Redis,  # type: ignore[type-arg,unused-ignore]
        quotas: Mapping[str, ModelQuota],
        *,
        window_s: float = 60.0,
        margin_s: float = 0.5,
        prefix: str = "visionq:rl",
    ) -> None:
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"window_s must be a positive number, got {window_s!r}")
        if not (math.isfinite(margin_s) and margin_s >= 0):
            raise ValueError(f"margin_s must be zero or positive, got {margin_s!r}")
        self._quotas = dict(quotas)
        self._window_ms = math.ceil((window_s + margin_s) * 1000)
        # Two windows: every entry has left by then, so an expired key loses nothing.
        self._ttl_ms = 2 * self._window_ms
        self._prefix = prefix
        self._script = redis.register_script(_SLIDING_LOG_LUA)

    def keys(self, model: str) -> tuple[str, str]:
        """The Redis keys of ``model``: its log (sorted set) and its token sum."""
        base = f"{self._prefix}:{{{model}}}"
        return f"{base}:log", f"{base}:tokens"

    def try_acquire(self, model: str, tokens: int) -> float:
        """Admit one request of ``tokens`` input tokens for ``model`` if the quota allows it now.

        Returns 0.0 when admitted (and recorded), else the seconds until the entry that
        blocks it leaves the window (nothing recorded). Models without a quota are admitted
        without asking Redis. Redis errors propagate.
        """
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        quota = self._quotas.get(model)
        if quota is None or quota.unlimited:
            return 0.0
        member = f"{tokens}:{uuid.uuid4().hex}"
        args: list[int | str] = [
            self._window_ms,
            -1 if quota.rpm is None else quota.rpm,
            -1 if quota.tpm is None else quota.tpm,
            tokens,
            member,
            self._ttl_ms,
        ]
        wait_ms = int(self._script(keys=list(self.keys(model)), args=args))
        return wait_ms / 1000.0

    def acquire(
        self,
        model: str,
        tokens: int,
        *,
        deadline: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Block until the request is admitted; RateLimitTimeout if not before ``deadline``.

        ``deadline`` is a ``clock()`` value. Raises as soon as the next possible admission
        falls after the deadline, rather than sleeping in vain.
        """
        while True:
            wait = self.try_acquire(model, tokens)
            if wait <= 0:
                return
            now = clock()
            if now + wait > deadline:
                raise RateLimitTimeout(model, wait)
            pause = wait + random.uniform(0.0, _JITTER_S)
            sleep(min(pause, max(deadline - now, 0.0)))
