"""One Gemini rate limit shared by every worker process and thread: sliding logs in Redis.

Per quota entry (a model, or ``"*"`` for all models together), at most ``rpm`` requests and
``tpm`` input tokens are admitted in any window of ``window_s + margin_s`` seconds, and at
most ``usd`` estimated dollars in any window of ``usd window + margin_s`` seconds. The
margin absorbs the delay between admission here and the request reaching Gemini, whose
own window is ``window_s``. A call is admitted only when every entry that applies to it
(its model's and ``"*"``) admits it; one refused by a later entry is taken back from the
earlier ones.

Dollars are paced with each job's estimate (the upper bound ``estimate.cost_usd.max``,
so the pacing errs on the safe side), kept in nano-dollars: Gemini's spend limits are
rolling dollars per 10 minutes per project ($10 on Tier 1), which is why the usd window
defaults to 600 s. A job whose cost is unknown (no price) counts 0 dollars.

Redis keys per entry (the ``{model}`` hash tag keeps each pair in one Redis Cluster slot):

- ``<prefix>:{<model>}:log``: sorted set of admissions, score = Redis server time in ms,
  member = ``"<tokens>:<unique id>"``;
- ``<prefix>:{<model>}:tokens``: running sum of the tokens of the members of the log;
- ``<prefix>:{<model>}:usd:log`` and ``:usd:sum``: the same for nano-dollars.

All expire two windows after the last admission, so idle models leave nothing behind.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import redis

from visionq.models.metrics import RATELIMIT_TIMEOUTS, RATELIMIT_WAIT_SECONDS, model_label
from visionq.models.ratelimits import ALL_MODELS, DEFAULT_USD_WINDOW_S, ModelQuota, parse_quotas
from visionq.vision.errors import CodedError

__all__ = ["GeminiRateLimiter", "ModelQuota", "RateLimitTimeout", "parse_quotas"]

# Upper bound of the random delay added to each wait in `acquire`: workers refused together
# would otherwise all retry at the same millisecond and collide again.
_JITTER_S = 0.05

_NANO = Decimal(1_000_000_000)

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

# KEYS[1] log, KEYS[2] sum; ARGV[1] member, ARGV[2] its amount. Takes an admission back.
_RELEASE_LUA = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('DECRBY', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


class RateLimitTimeout(CodedError, TimeoutError):
    """The shared rate limiter could not admit a Gemini call before the job's deadline: the
    job fails (too many jobs for the model's configured limits)."""

    codes = frozenset({"rate_limit_timeout"})

    def __init__(self, model: str, wait_s: float) -> None:
        super().__init__(
            "rate_limit_timeout",
            f"Gemini rate limit for {model!r}: next admission in {wait_s:.3f} s, "
            "after the deadline",
        )
        self.model = model
        self.wait_s = wait_s


@dataclass(frozen=True)
class _Log:
    """One sliding log: its keys, window and limits (-1 = none), as the script takes them."""

    keys: tuple[str, str]
    window_ms: int
    count_limit: int
    amount_limit: int


class GeminiRateLimiter:
    """Admits Gemini calls within requests, input-token and dollar quotas, across processes.

    Exact sliding logs: in any window of an entry's window + ``margin_s`` seconds of Redis
    server time, the admitted requests of a model never exceed its ``rpm``, their tokens
    its ``tpm`` and their estimated dollars its ``usd`` (and likewise for ``"*"``, over
    all models). A single request larger than a whole quota is admitted only when nothing
    else is in that window (otherwise it could never run); it then blocks the quota until
    it leaves the window.
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
        usd_window_s: float = DEFAULT_USD_WINDOW_S,
    ) -> None:
        for name, value in (("window_s", window_s), ("usd_window_s", usd_window_s)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not (math.isfinite(margin_s) and margin_s >= 0):
            raise ValueError(f"margin_s must be zero or positive, got {margin_s!r}")
        self._quotas = dict(quotas)
        self._window_s, self._margin_s, self._usd_window_s = window_s, margin_s, usd_window_s
        self._prefix = prefix
        self._script = redis.register_script(_SLIDING_LOG_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._logs = {name: self._logs_of(name, quota) for name, quota in self._quotas.items()}

    def keys(self, model: str) -> tuple[str, str]:
        """The Redis keys of ``model``'s requests and tokens: its log and its token sum."""
        base = f"{self._prefix}:{{{model}}}"
        return f"{base}:log", f"{base}:tokens"

    def usd_keys(self, model: str) -> tuple[str, str]:
        """The Redis keys of ``model``'s dollars (``"*"``: all models'): log and sum."""
        base = f"{self._prefix}:{{{model}}}:usd"
        return f"{base}:log", f"{base}:sum"

    def _window_ms(self, window_s: float) -> int:
        return math.ceil((window_s + self._margin_s) * 1000)

    def _logs_of(self, name: str, quota: ModelQuota) -> tuple[_Log | None, _Log | None]:
        """The (requests and tokens, dollars) logs of one entry; None where unlimited."""
        requests = None
        if quota.rpm is not None or quota.tpm is not None:
            requests = _Log(
                keys=self.keys(name),
                window_ms=self._window_ms(quota.window_s or self._window_s),
                count_limit=-1 if quota.rpm is None else quota.rpm,
                amount_limit=-1 if quota.tpm is None else quota.tpm,
            )
        dollars = None
        if quota.usd is not None:
            dollars = _Log(
                keys=self.usd_keys(name),
                window_ms=self._window_ms(quota.window_s or self._usd_window_s),
                count_limit=-1,
                amount_limit=int(quota.usd * _NANO),
            )
        return requests, dollars

    def try_acquire(self, model: str, tokens: int, usd: Decimal = Decimal(0)) -> float:
        """Admit one request of ``tokens`` input tokens and ``usd`` estimated dollars for
        ``model`` if every quota that applies (the model's, ``"*"``) allows it now.

        Returns 0.0 when admitted (and recorded), else the seconds until the entry that
        blocks it leaves its window (nothing recorded). Calls no quota applies to are
        admitted without asking Redis. Redis errors propagate.
        """
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        if usd < 0:
            raise ValueError(f"usd must be >= 0, got {usd}")
        nano = math.ceil(usd * _NANO)
        admitted: list[tuple[_Log, str, int]] = []
        for name in dict.fromkeys((model, ALL_MODELS)):
            for log, amount in zip(self._logs.get(name, (None, None)), (tokens, nano), strict=True):
                if log is None:
                    continue
                member = f"{amount}:{uuid.uuid4().hex}"
                args: list[int | str] = [log.window_ms, log.count_limit, log.amount_limit,
                                         amount, member, 2 * log.window_ms]  # fmt: skip
                wait_ms = int(self._script(keys=list(log.keys), args=args))
                if wait_ms > 0:
                    # Refused here: take back what the other logs admitted for this call.
                    for taken, taken_member, taken_amount in admitted:
                        self._release(keys=list(taken.keys), args=[taken_member, taken_amount])
                    return wait_ms / 1000.0
                admitted.append((log, member, amount))
        return 0.0

    def acquire(
        self,
        model: str,
        tokens: int,
        *,
        deadline: float,
        usd: Decimal = Decimal(0),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Block until the request is admitted; RateLimitTimeout if not before ``deadline``.

        ``deadline`` is a ``clock()`` value. Raises as soon as the next possible admission
        falls after the deadline, rather than sleeping in vain. The time slept before the
        admission (0 when admitted at once) and each timeout go to the metrics.
        """
        label = model_label(model)
        slept = 0.0
        while True:
            wait = self.try_acquire(model, tokens, usd)
            if wait <= 0:
                RATELIMIT_WAIT_SECONDS.labels(label).observe(slept)
                return
            now = clock()
            if now + wait > deadline:
                RATELIMIT_TIMEOUTS.labels(label).inc()
                raise RateLimitTimeout(model, wait)
            pause = min(wait + random.uniform(0.0, _JITTER_S), max(deadline - now, 0.0))
            sleep(pause)
            slept += pause
