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
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import redis

from visionq.models.metrics import RATELIMIT_TIMEOUTS, RATELIMIT_WAIT_SECONDS, model_label
from visionq.models.ratelimits import ALL_MODELS, DEFAULT_USD_WINDOW_S, ModelQuota, parse_quotas
from visionq.vision.errors import CodedError
from visionq.worker.quota_learn import (
    FLOOR,
    KINDS,
    LEARN_LUA,
    SCALE_TTL_MS,
    SETTLE_LUA,
    FactorWatch,
    LearnPolicy,
)
from visionq.worker.ratelimit_lua import RELEASE_LUA, RESTAMP_LUA, SLIDING_LOG_LUA

__all__ = [
    "Admission",
    "GeminiRateLimiter",
    "LearnPolicy",
    "ModelQuota",
    "RateLimitTimeout",
    "parse_quotas",
]

# Upper bound of the random delay added to each wait in `acquire`: workers refused together
# would otherwise all retry at the same millisecond and collide again. Small: the first to
# wake takes the freed slot, and every millisecond of lateness is quota left unused.
_JITTER_S = 0.01
# Admissions of the last second are at most twice a window's average rate: a window's quota
# is spread over half of it at least, not sent in one burst (worker/ratelimit_lua.py).
SMOOTH_MS, _BURST = 1000, 2

_NANO = Decimal(1_000_000_000)


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
    """One sliding log: its keys, window and limits (-1 = none), as the script takes them,
    and the kinds its count and amount limits have in the scale hash."""

    keys: tuple[str, str]
    scale_key: str
    window_ms: int
    count_limit: int
    amount_limit: int
    count_kind: str
    amount_kind: str


@dataclass
class Admission:
    """One admitted call: the log members it holds (log, member, amount), the amount kind
    of each (tokens or nano-dollars) and when it was admitted (``time.monotonic``)."""

    model: str
    taken: list[tuple[_Log, str, int]] = field(default_factory=list)
    at: float = 0.0

    def age(self) -> float:
        """Seconds since the admission."""
        return time.monotonic() - self.at


class GeminiRateLimiter:
    """Admits Gemini calls within requests, input-token and dollar quotas, across processes.

    Exact sliding logs: in any window of an entry's window + ``margin_s`` seconds of Redis
    server time, the admitted requests of a model never exceed its ``rpm``, their tokens
    its ``tpm`` and their estimated dollars its ``usd`` (and likewise for ``"*"``, over
    all models). A single request larger than a whole quota is admitted only when nothing
    else is in that window (otherwise it could never run); it then blocks the quota until
    it leaves the window. With ``learn``, the limits used are the configured ones times the
    factors Gemini's 429s taught (worker/quota_learn.py); ``settle`` replaces an
    admission's reserved amounts by the call's actual ones.
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
        learn: LearnPolicy | None = None,
        smooth_ms: int = SMOOTH_MS,
    ) -> None:
        for name, value in (("window_s", window_s), ("usd_window_s", usd_window_s)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not (math.isfinite(margin_s) and margin_s >= 0):
            raise ValueError(f"margin_s must be zero or positive, got {margin_s!r}")
        self._quotas = dict(quotas)
        self._window_s, self._margin_s, self._usd_window_s = window_s, margin_s, usd_window_s
        self._prefix = prefix
        self.learn, self._smooth_ms = learn, smooth_ms  # smooth_ms 0: no smoothing
        self.watch = FactorWatch(window_s)
        self._script = redis.register_script(SLIDING_LOG_LUA)
        self._release = redis.register_script(RELEASE_LUA)
        self._restamp = redis.register_script(RESTAMP_LUA)
        self._settle = redis.register_script(SETTLE_LUA)
        self._learn = redis.register_script(LEARN_LUA)
        self._redis = redis
        self._logs = {name: self._logs_of(name, quota) for name, quota in self._quotas.items()}
        # The last admission of each thread, for the caller that paced it (take_admission).
        self._local = threading.local()

    @property
    def margin_s(self) -> float:
        """Seconds added to each window for the delay between admission and arrival."""
        return self._margin_s

    def keys(self, model: str) -> tuple[str, str]:
        """The Redis keys of ``model``'s requests and tokens: its log and its token sum."""
        base = f"{self._prefix}:{{{model}}}"
        return f"{base}:log", f"{base}:tokens"

    def usd_keys(self, model: str) -> tuple[str, str]:
        """The Redis keys of ``model``'s dollars (``"*"``: all models'): log and sum."""
        base = f"{self._prefix}:{{{model}}}:usd"
        return f"{base}:log", f"{base}:sum"

    def scale_key(self, model: str) -> str:
        """The Redis hash of the factors learned for ``model``'s entry (worker/quota_learn.py)."""
        return f"{self._prefix}:{{{model}}}:scale"

    def _window_ms(self, window_s: float) -> int:
        return math.ceil((window_s + self._margin_s) * 1000)

    def _logs_of(self, name: str, quota: ModelQuota) -> tuple[_Log | None, _Log | None]:
        """The (requests and tokens, dollars) logs of one entry; None where unlimited."""
        requests = None
        if quota.rpm is not None or quota.tpm is not None:
            requests = _Log(
                keys=self.keys(name),
                scale_key=self.scale_key(name),
                window_ms=self._window_ms(quota.window_s or self._window_s),
                count_limit=-1 if quota.rpm is None else quota.rpm,
                amount_limit=-1 if quota.tpm is None else quota.tpm,
                count_kind="rpm",
                amount_kind="tpm",
            )
        dollars = None
        if quota.usd is not None:
            dollars = _Log(
                keys=self.usd_keys(name),
                scale_key=self.scale_key(name),
                window_ms=self._window_ms(quota.window_s or self._usd_window_s),
                count_limit=-1,
                amount_limit=int(quota.usd * _NANO),
                count_kind="",
                amount_kind="usd",
            )
        return requests, dollars

    def _args(self, log: _Log, amount: int, member: str, now: int | None) -> list[Any]:
        learn = self.learn
        return [log.window_ms, log.count_limit, log.amount_limit, amount, member,
                2 * log.window_ms, log.count_kind, log.amount_kind,
                log.window_ms if learn else 0, learn.increase if learn else 0,
                learn.quiet_windows if learn else 0, self._smooth_ms, _BURST,
                "" if now is None else now]  # fmt: skip

    def try_acquire(
        self, model: str, tokens: int, usd: Decimal = Decimal(0), *, now_ms: int | None = None
    ) -> float:
        """Admit one request of ``tokens`` input tokens and ``usd`` estimated dollars for
        ``model`` if every quota that applies (the model's, ``"*"``) allows it now.

        Returns 0.0 when admitted (and recorded), else the seconds until the entry that
        blocks it leaves its window (nothing recorded). Calls no quota applies to are
        admitted without asking Redis. Redis errors propagate. ``now_ms``: a test's clock
        (default Redis TIME).
        """
        return self._try(model, tokens, usd, now_ms)[0]

    def _try(
        self, model: str, tokens: int, usd: Decimal, now_ms: int | None = None
    ) -> tuple[float, Admission | None]:
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        if usd < 0:
            raise ValueError(f"usd must be >= 0, got {usd}")
        nano = math.ceil(usd * _NANO)
        admission = Admission(model)
        for name in dict.fromkeys((model, ALL_MODELS)):
            for log, amount in zip(self._logs.get(name, (None, None)), (tokens, nano), strict=True):
                if log is None:
                    continue
                member = f"{amount}:{uuid.uuid4().hex}"
                keys = [*log.keys, log.scale_key]
                wait_ms = int(self._script(keys=keys, args=self._args(log, amount, member, now_ms)))
                if wait_ms > 0:
                    # Refused here: take back what the other logs admitted for this call.
                    self.release(admission)
                    return wait_ms / 1000.0, None
                admission.taken.append((log, member, amount))
        admission.at = time.monotonic()
        return 0.0, admission

    def release(self, admission: Admission) -> None:
        """Take an admission back (its call was never sent): its members leave the logs."""
        for log, member, amount in admission.taken:
            self._release(keys=list(log.keys), args=[member, amount])
        admission.taken = []

    def restamp(self, admission: Admission) -> bool:
        """Move the admission's stamps to now, right before its call is sent later than it
        was admitted: the margin then covers only the way to Gemini. Never frees or takes a
        slot, so it cannot exceed a limit (worker/ratelimit_lua.py). False when a member
        already left its log (older than its window): take it back and ask again."""
        kept = True
        for log, member, _ in admission.taken:
            ttl = 2 * log.window_ms
            args: list[str | int] = [member, ttl, log.window_ms]
            kept = bool(self._restamp(keys=list(log.keys), args=args)) and kept
        admission.at = time.monotonic()
        return kept

    def settle(self, admission: Admission, *, tokens: int | None, usd: Decimal | None) -> None:
        """Replace the admission's reserved input tokens and dollars by the call's actual
        ones (None: unknown, the reservation stays), keeping its admission time: the
        quotas are then counted as Gemini counts them, not as estimated."""
        actual = (tokens, None if usd is None else math.ceil(max(usd, Decimal(0)) * _NANO))
        settled = []
        for log, member, amount in admission.taken:
            new = actual[0] if log.amount_kind == "tpm" else actual[1]
            if new is None or new == amount:
                settled.append((log, member, amount))
                continue
            new_member = f"{max(new, 0)}:{uuid.uuid4().hex}"
            self._settle(keys=list(log.keys), args=[member, new_member, max(new, 0) - amount])
            settled.append((log, new_member, max(new, 0)))
        admission.taken = settled

    def take_admission(self) -> Admission | None:
        """The last admission ``acquire`` made in this thread (then forgotten), if any."""
        admission: Admission | None = getattr(self._local, "admission", None)
        self._local.admission = None
        return admission

    def learn_429(
        self,
        model: str,
        *,
        quota_metric: str | None,
        quota_value: int | None,
        now_ms: int | None = None,
    ) -> None:
        """Lower the limits used for ``model`` after a 429 (worker/quota_learn.py).

        ``quota_metric``: the limit kind the 429 named (``"rpm"``, ``"tpm"``, ``"usd"``;
        None: unnamed, every kind); ``quota_value``: its QuotaFailure ``quotaValue``. The
        most specific entry limiting that kind learns (the model's, else ``"*"``); an
        unnamed 429 teaches every entry that applies. Nothing happens without ``learn``.
        """
        if self.learn is None:
            return
        for name in dict.fromkeys((model, ALL_MODELS)):
            quota = self._quotas.get(name)
            if quota is None:
                continue
            configured = _configured(quota, quota_metric)
            if quota_metric is not None and configured is None:
                continue
            requests, dollars = self._logs[name]
            log = dollars if quota_metric == "usd" else requests or dollars
            if log is None:
                continue
            value = quota_value if quota_value else -1
            limit = configured if configured is not None else -1
            args: list[str | int | float] = [quota_metric or "", value, limit, self.learn.decrease,
                                             FLOOR, log.window_ms, SCALE_TTL_MS,
                                             "" if now_ms is None else now_ms]  # fmt: skip
            self._learn(keys=[self.scale_key(name)], args=args)
            self.watch.saw(name, self.factors(name))
            if quota_metric is not None:
                return

    def factors(self, model: str) -> dict[str, float]:
        """The learned factors of ``model``'s entry (1.0 where none was learned)."""
        raw: list[bytes | None] = list(self._redis.hmget(self.scale_key(model), list(KINDS)))  # type: ignore[arg-type,unused-ignore]
        return {
            kind: float(value) if value else 1.0 for kind, value in zip(KINDS, raw, strict=True)
        }

    def effective_limits(self, model: str) -> dict[str, int]:
        """The limits of ``model``'s entry in use now: configured x learned factor (the
        factors as of now; a rise happens at the next admission)."""
        quota = self._quotas.get(model)
        if quota is None:
            return {}
        factors = self.factors(model) if self.learn else dict.fromkeys(KINDS, 1.0)
        found: dict[str, int] = {}
        for kind in KINDS:
            configured = _configured(quota, kind)
            if configured is not None:
                found[kind] = max(1, math.floor(configured * factors[kind]))
        return found

    def acquire(
        self,
        model: str,
        tokens: int,
        *,
        deadline: float,
        usd: Decimal = Decimal(0),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Admission:
        """Block until the request is admitted; RateLimitTimeout if not before ``deadline``.

        ``deadline`` is a ``clock()`` value. Raises as soon as the next possible admission
        falls after the deadline, rather than sleeping in vain. The time slept before the
        admission (0 when admitted at once) and each timeout go to the metrics. Returns
        the admission (also kept for this thread's ``take_admission``).
        """
        label = model_label(model)
        slept = 0.0
        while True:
            wait, admission = self._try(model, tokens, usd)
            if admission is not None:
                RATELIMIT_WAIT_SECONDS.labels(label).observe(slept)
                self._local.admission = admission
                if self.learn:  # factors rise in Redis (quiet windows): seen here
                    for name in (n for n in (model, ALL_MODELS) if n in self._quotas):
                        if self.watch.due(name, clock()):
                            self.watch.saw(name, self.factors(name))
                return admission
            now = clock()
            if now + wait > deadline:
                RATELIMIT_TIMEOUTS.labels(label).inc()
                raise RateLimitTimeout(model, wait)
            pause = min(wait + random.uniform(0.0, _JITTER_S), max(deadline - now, 0.0))
            sleep(pause)
            slept += pause


def _configured(quota: ModelQuota, kind: str | None) -> float | None:
    """The configured limit of ``kind`` (usd in dollars, as a quotaValue says it); None
    when not limited."""
    value = {"rpm": quota.rpm, "tpm": quota.tpm, "usd": quota.usd}.get(kind or "")
    return None if value is None else float(value)
