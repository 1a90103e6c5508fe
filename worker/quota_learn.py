"""Learning Gemini's real quota from its 429s, shared by every worker through Redis.

VISIONQ_RATE_LIMITS says what the quota should be; Gemini's 429s say what it is. A 429
lowers the limits the limiter uses (``factor`` x configured, per kind ``rpm``, ``tpm``,
``usd``), in one hash per quota entry, ``<prefix>:{<model>}:scale``, next to its logs:

- a QuotaFailure naming the violated quota with its ``quotaValue`` sets the factor of that
  kind to at most ``0.98 * quotaValue / configured``: Gemini said the number (a value at
  least the configured one lowers nothing: that 429 came from arrival jitter, not a smaller
  quota);
- a 429 naming no value (Help only: the paid tier, python-genai#1427; a spend limit) cuts
  the named kind, or every kind, by ``decrease`` (x0.7), at most once per window: all the
  429s of one burst are one signal, not one each;
- once no 429 came for ``quiet_windows`` windows, every factor below 1 rises by
  ``increase`` per window, up to 1: a quota raised later (or a one-off 429) is used again.

Per-day quotas are not learned (worker/retry.py ends such jobs). The factors are read by
the sliding-log script on each admission (worker/ratelimit.py), so every process uses the
same limits at once; the hash expires a day after the last 429 or rise.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any

from visionq.models.metrics import RATELIMIT_LEARNED_FACTOR, model_label
from visionq.models.ratelimits import ALL_MODELS
from visionq.worker.quotas import HELP_ONLY, PER_MINUTE, SPEND, error_details

__all__ = [
    "FLOOR",
    "KINDS",
    "LEARN_LUA",
    "SCALE_LUA",
    "SCALE_TTL_MS",
    "SETTLE_LUA",
    "FactorWatch",
    "LearnPolicy",
    "learnable",
    "quota_violation",
]

# The limit kinds a factor scales, as the scale hash names them.
KINDS = ("rpm", "tpm", "usd")
# A 429 says the quota was reached, not exceeded by much: keep 2% below Gemini's number.
_BELOW_VALUE = 0.98
# The multiplicative decrease never goes below this factor (one request at a time remains
# possible anyway: scaled limits are at least 1).
FLOOR = 0.05
SCALE_TTL_MS = 24 * 3600 * 1000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LearnPolicy:
    """How 429s change the limits: ``decrease`` per window of 429s without a quota value,
    ``increase`` per quiet window after ``quiet_windows`` windows without a 429."""

    decrease: float = 0.7
    increase: float = 0.05
    quiet_windows: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.decrease < 1:
            raise ValueError(f"decrease must be in (0, 1), got {self.decrease!r}")
        if not 0 < self.increase <= 1:
            raise ValueError(f"increase must be in (0, 1], got {self.increase!r}")
        if self.quiet_windows < 1:
            raise ValueError(f"quiet_windows must be >= 1, got {self.quiet_windows!r}")


class FactorWatch:
    """What this process last saw of each entry's learned factors: the gauge
    visionq_ratelimit_learned_factor{model,kind}, and a log line when one changed (WARNING
    when 429s lowered it, INFO when it rose back). ``due`` says when to read them again:
    once per ``every_s`` per entry (one HMGET a window)."""

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self._seen: dict[str, dict[str, float]] = {}
        self._read_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, name: str, now: float) -> bool:
        """Whether ``name``'s factors were last read ``every_s`` or longer before ``now``
        (then counted as read now)."""
        with self._lock:
            if name in self._read_at and now - self._read_at[name] < self._every_s:
                return False
            self._read_at[name] = now
            return True

    def saw(self, name: str, factors: dict[str, float]) -> None:
        """Record the factors just read for entry ``name`` (a model id or ``"*"``)."""
        with self._lock:
            before = self._seen.get(name, dict.fromkeys(KINDS, 1.0))
            self._seen[name] = dict(factors)
        label = name if name == ALL_MODELS else model_label(name)
        for kind, factor in factors.items():
            RATELIMIT_LEARNED_FACTOR.labels(label, kind).set(factor)
            was = before.get(kind, 1.0)
            if factor < was:
                log.warning(
                    "rate limiter: Gemini's 429s lowered the %s limit of %s to %.2f x the "
                    "configured one (was %.2f); check the quota in Google AI Studio or "
                    "lower VISIONQ_RATE_LIMITS", kind, name, factor, was,
                )  # fmt: skip
            elif factor > was:
                log.info(
                    "rate limiter: the %s limit of %s rose back to %.2f x the configured one",
                    kind, name, factor,
                )  # fmt: skip


# KEYS[1] scale hash. ARGV: kind ('' = every kind), quota value (-1 = none), configured limit
# of that kind (-1 = none), decrease, floor, window ms, ttl ms, now ms ('' = Redis TIME).
# Returns 1 when a factor changed.
LEARN_LUA = f"""
if redis.replicate_commands then redis.replicate_commands() end
local now
if ARGV[8] ~= '' then now = tonumber(ARGV[8]) else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local scale, kind = KEYS[1], ARGV[1]
local value, configured = tonumber(ARGV[2]), tonumber(ARGV[3])
local changed = 0
if kind ~= '' and value > 0 and configured > 0 then
  -- A quota at least the configured one: the pacing was right and the 429 came from calls
  -- reaching Gemini later than they were admitted, not from a smaller quota: nothing to
  -- lower (a cut would waste 2% of the quota for windows).
  if value < configured then
    local f = tonumber(redis.call('HGET', scale, kind)) or 1
    local target = math.max({_BELOW_VALUE} * value / configured, 0.000001)
    if target < f then
      redis.call('HSET', scale, kind, string.format('%.6f', target))
      changed = 1
    end
  end
  -- Every such 429 restarts the quiet period, lowered or not.
  redis.call('HSET', scale, 'cut_ms', now)
else
  local cut = tonumber(redis.call('HGET', scale, 'cut_ms')) or 0
  if now - cut > tonumber(ARGV[6]) then
    local kinds = {{'rpm', 'tpm', 'usd'}}
    if kind ~= '' then kinds = {{kind}} end
    for _, k in ipairs(kinds) do
      local f = tonumber(redis.call('HGET', scale, k)) or 1
      local lowered = math.max(tonumber(ARGV[5]), f * tonumber(ARGV[4]))
      redis.call('HSET', scale, k, string.format('%.6f', lowered))
    end
    redis.call('HSET', scale, 'cut_ms', now)
    changed = 1
  end
end
redis.call('PEXPIRE', scale, ARGV[7])
return changed
"""

# The part of the sliding-log script (worker/ratelimit.py) that reads the factors: defines
# `scaled(limit, kind)` after raising them when the entry has been quiet long enough.
# Uses KEYS[3] (scale hash) and ARGV[7..11]: count kind, amount kind, window ms (0 = not
# learning), increase, quiet windows; `now` is the script's.
SCALE_LUA = f"""
local scale = KEYS[3]
local learning = tonumber(ARGV[9]) > 0
if learning then
  local s = redis.call('HMGET', scale, 'rpm', 'tpm', 'usd', 'cut_ms', 'raised_ms')
  local quiet = tonumber(ARGV[9])
  local cut, raised = tonumber(s[4]) or 0, tonumber(s[5]) or 0
  if now - cut > tonumber(ARGV[11]) * quiet and now - raised > quiet then
    local rose = false
    for i, k in ipairs({{'rpm', 'tpm', 'usd'}}) do
      local f = tonumber(s[i])
      if f and f < 1 then
        redis.call('HSET', scale, k, string.format('%.6f', math.min(1, f + tonumber(ARGV[10]))))
        rose = true
      end
    end
    if rose then
      redis.call('HSET', scale, 'raised_ms', now)
      redis.call('PEXPIRE', scale, {SCALE_TTL_MS})
    end
  end
end
local function scaled(limit, k)
  if limit < 0 or k == '' or not learning then return limit end
  local f = tonumber(redis.call('HGET', scale, k)) or 1
  return math.max(1, math.floor(limit * f))
end
"""

# KEYS[1] log, KEYS[2] sum. ARGV: the admission's member, its new member (the actual
# amount), the amount's change. The member keeps its score (admission time): only what it
# counts changes. Returns 0 when the member already left the window (nothing to settle).
SETTLE_LUA = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], score, ARGV[2])
redis.call('INCRBY', KEYS[2], ARGV[3])
return 1
"""


def learnable(exc: BaseException) -> bool:
    """Whether ``exc`` is a 429 that teaches the limiter: per-minute, spend or Help-only
    (a per-day quota is not a rate: worker/retry.py handles it)."""
    return getattr(exc, "http_status", None) == 429 and getattr(exc, "quota_class", None) in (
        PER_MINUTE,
        SPEND,
        HELP_ONLY,
    )


def quota_violation(exc: BaseException) -> tuple[str | None, int | None]:
    """The limit kind (``"rpm"``, ``"tpm"``, ``"usd"``; None when the 429 names none) and
    the ``quotaValue`` (None when absent) of a 429, from the google.genai APIError's
    ``details`` (``exc`` itself or the cause of the GeminiCallError it was translated
    to). Per-day quotas are skipped; the first rate quota named wins."""
    for violation in _violations(_api_details(exc)):
        kind = _kind(str(violation.get("quotaMetric", "")), str(violation.get("quotaId", "")))
        if kind is None:
            continue
        return kind, _value(violation.get("quotaValue"))
    return None, None


def _api_details(exc: BaseException | None) -> Any:
    seen = 0
    while exc is not None and seen < 5:
        details = getattr(exc, "details", None)
        if details is not None and hasattr(exc, "code"):
            return details
        exc, seen = exc.__cause__, seen + 1
    return None


def _violations(details: Any) -> list[dict[str, Any]]:
    return [
        violation
        for detail in error_details(details)
        if str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure")
        for violation in detail.get("violations") or []
        if isinstance(violation, dict)
    ]


def _kind(metric: str, quota_id: str) -> str | None:
    named = f"{metric} {quota_id}".lower()
    if "perday" in named:
        return None
    if "spend" in named:
        return "usd"
    if "input_token" in named or "inputtoken" in named:
        return "tpm"
    if "request" in named:
        return "rpm"
    return None


def _value(raw: Any) -> int | None:
    """A quota value from a 429's body (external input): a positive finite number, else None."""
    try:
        number = float(str(raw))
        # "Infinity", "1e999" and "nan" parse as floats but are no limit to learn.
        value = int(number) if math.isfinite(number) else 0
    except (ValueError, OverflowError):
        return None
    return value if value > 0 else None
