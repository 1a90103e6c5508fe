"""Fault and quota settings, and the per-request fault draw (no HTTP, no state here).

The settings start from ``EmulatorConfig`` and can be replaced at runtime through
``POST /_emulator/faults`` (see admin.py); both paths validate through
``FaultSettings.__post_init__``, so a bad CLI flag and a bad JSON value get the same message.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_RETRY_DELAY_S = 1.0
DEFAULT_HANG_S = 600.0
DEFAULT_QUOTA_WINDOW_S = 60.0
# Gemini's spend limits are per rolling 10 minutes.
DEFAULT_SPEND_WINDOW_S = 600.0
DEFAULT_BATCH_PENDING_S = 2.0
DEFAULT_BATCH_LINES_PER_S = 50.0

# Fault kinds as counted in the stats. ``always_fail`` with another status counts under
# that status ("504"...), added when it first happens.
FAULT_KINDS: tuple[str, ...] = ("503", "500", "429", "daily_quota", "hang")
DAILY_QUOTA = "daily_quota"
HANG = "hang"

# Statuses ``always_fail`` may name: those the Gemini API answers generateContent with.
ALWAYS_FAIL_STATUSES: tuple[int, ...] = (400, 403, 404, 429, 500, 503, 504)

_RATES = (
    "fail_503_rate", "fail_500_rate", "fail_429_rate", "hang_rate", "flex_shed_rate",
    "priority_downgrade_rate", "batch_fail_line_rate",
)  # fmt: skip

# The body of an injected 429 (``fail_429_rate`` or ``always_fail`` 429); see errors.py.
QUOTA_SHAPES: tuple[str, ...] = ("standard", "mixed_daily", "help_only", "spend_limit")
QUOTA_TIERS: tuple[str, ...] = ("paid", "free")
SPEND_TIERS: tuple[int, ...] = (1, 2, 3)
PROMPT_BLOCK_REASONS: tuple[str, ...] = (
    "SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "IMAGE_SAFETY",
)  # fmt: skip
BLOCKED_FINISH_REASONS: tuple[str, ...] = (
    "SAFETY", "RECITATION", "PROHIBITED_CONTENT", "IMAGE_SAFETY", "MALFORMED_RESPONSE",
    "OTHER", "BLOCKLIST", "SPII",
)  # fmt: skip
EMPTY_ANSWERS: tuple[str, ...] = ("no_candidates", "no_parts", "empty_text")
MASK_FORMATS: tuple[str, ...] = ("png", "seg_tokens", "polygon")
_DURATIONS = ("retry_delay_s", "hang_s", "batch_pending_s", "batch_create_delay_s")
_NON_NEGATIVE = ("flex_latency_ms", "batch_lines_per_s")
# Statuses a failed batch line may carry (``batch_fail_line_status``).
BATCH_LINE_STATUSES: tuple[int, ...] = (400, 429, 500, 503)
# Settings that count the next N batches they hit (0 = every batch for the *_count ones).
BATCH_COUNTS = ("batch_stall_count", "batch_expire_count", "batch_fail", "batch_lose_create")
_LIMITS = ("rpm", "tpm")


def _is_number(value: object) -> bool:
    # bool is an int subclass, but `true` for a rate is a mistake worth reporting.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class FaultSettings:
    """What goes wrong with generateContent, and the per-model quotas.

    - ``fail_503_rate``, ``fail_500_rate``, ``fail_429_rate``: probability (0..1) that a call
      answers that error; the three together may not exceed 1.
    - ``retry_delay_s``: the RetryInfo delay of a random 429.
    - ``daily_quota_exhausted``: every call answers the per-day quota 429.
    - ``hang_rate``, ``hang_s``: probability that a call waits ``hang_s`` seconds before
      answering normally (a hung backend).
    - ``always_fail``: every call fails with this HTTP status (None = off).
    - ``fault_seed``: seed of the draws (None = unpredictable).
    - ``rpm``, ``tpm``: admitted requests / prompt tokens per ``quota_window_s`` seconds,
      per model (None = unlimited).
    - ``quota_shape``: body of an injected 429: ``standard`` (QuotaFailure, Help,
      RetryInfo), ``mixed_daily`` (per-minute and per-day ids together, RetryInfo
      ``retry_delay_s``), ``help_only`` (only a Help detail) or ``spend_limit``.
    - ``quota_tier``: ``paid`` quota ids, or ``free`` ones (``-FreeTier`` suffix).
    - ``spend_tier``: 1, 2 or 3: the spend-limit 429's tier ($10, $50, $200 per 10 min).
    - ``prompt_block_reason``: answered calls come back with ``promptFeedback.blockReason``
      and no candidates; ``blocked_finish_reason``: with one candidate stopped for that
      reason and no content; ``empty_answer``: ``no_candidates``, ``no_parts`` (a
      candidate whose content has no parts) or ``empty_text``. At most one of the three;
      they hit every ``outcome_every``-th answered call (1 = all).
    - ``thoughts_tokens``: thoughts of every thinking call (None = the catalogue's count).
    - ``mask_format``: segmentation masks of every model (None = per model).
    - ``priority_downgrade``: ``serviceTier: priority`` calls are served (and reported in
      ``x-gemini-service-tier``) as ``standard``; ``flex_shed_rate``: probability that a
      ``flex`` call is shed with 503.
    - ``priority_downgrade_rate``: probability (0..1) that a ``priority`` call is served
      as ``standard`` (the boolean above downgrades them all); ``flex_latency_ms``: extra
      latency of every ``flex`` call that is not shed.
    - Batch API (see batches.py): ``batch_pending_s`` a batch stays PENDING, then its
      lines are answered at ``batch_lines_per_s`` (0 = no pacing). ``batch_stall``: the
      next ``batch_stall_count`` batches (0 = all) stay PENDING forever (no stats or
      updateTime change). ``batch_expire_after_s``: the next ``batch_expire_count``
      batches (0 = all) stay PENDING and turn EXPIRED that many seconds after creation
      (None = off). ``batch_fail_line_rate``: probability that a line answers an error of
      ``batch_fail_line_status``. ``batch_fail``: the next N batches end FAILED.
      ``batch_lose_create``: the next N creates make the batch but answer 503.
      ``batch_create_delay_s``: creates are answered that late (the batch exists and runs
      meanwhile). Counts take ``true`` as 1.
    - ``spend_limit_usd``: calls are refused with the spend-limit 429 while the calls
      answered in the last ``spend_window_s`` seconds cost that much (None = no limit);
      costs come from the catalogue's prices.

    Every value is checked here (ValueError with a readable message), whatever its source.
    """

    fail_503_rate: float = 0.0
    fail_500_rate: float = 0.0
    fail_429_rate: float = 0.0
    retry_delay_s: float = DEFAULT_RETRY_DELAY_S
    daily_quota_exhausted: bool = False
    hang_rate: float = 0.0
    hang_s: float = DEFAULT_HANG_S
    always_fail: int | None = None
    fault_seed: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    quota_window_s: float = DEFAULT_QUOTA_WINDOW_S
    quota_shape: str = "standard"
    quota_tier: str = "paid"
    spend_tier: int = 1
    prompt_block_reason: str | None = None
    blocked_finish_reason: str | None = None
    empty_answer: str | None = None
    outcome_every: int = 1
    thoughts_tokens: int | None = None
    mask_format: str | None = None
    priority_downgrade: bool = False
    flex_shed_rate: float = 0.0
    spend_limit_usd: float | None = None
    spend_window_s: float = DEFAULT_SPEND_WINDOW_S
    priority_downgrade_rate: float = 0.0
    flex_latency_ms: float = 0.0
    batch_pending_s: float = DEFAULT_BATCH_PENDING_S
    batch_lines_per_s: float = DEFAULT_BATCH_LINES_PER_S
    batch_stall: bool = False
    batch_stall_count: int = 0
    batch_expire_after_s: float | None = None
    batch_expire_count: int = 0
    batch_fail_line_rate: float = 0.0
    batch_fail_line_status: int = 500
    batch_fail: int = 0
    batch_lose_create: int = 0
    batch_create_delay_s: float = 0.0

    def __post_init__(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if not (_is_number(value) and 0 <= value <= 1):
                raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
        total = self.fail_503_rate + self.fail_500_rate + self.fail_429_rate
        if total > 1 + 1e-9:
            raise ValueError(
                f"fail_503_rate + fail_500_rate + fail_429_rate must be at most 1, got {total:g}"
            )
        for name in _DURATIONS:
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        for name in _NON_NEGATIVE:
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        self._check_options()
        self._check_batch()
        # JSON may send 1 for 1.0; stored as float so GET /_emulator/faults echoes floats.
        for name in (*_RATES, *_DURATIONS, *_NON_NEGATIVE, "quota_window_s", "spend_window_s"):
            object.__setattr__(self, name, float(getattr(self, name)))

    def _check_options(self) -> None:
        if not isinstance(self.daily_quota_exhausted, bool):
            raise ValueError(
                f"daily_quota_exhausted must be true or false, got {self.daily_quota_exhausted!r}"
            )
        if self.always_fail is not None and (
            not _is_int(self.always_fail) or self.always_fail not in ALWAYS_FAIL_STATUSES
        ):
            allowed = ", ".join(map(str, ALWAYS_FAIL_STATUSES))
            raise ValueError(
                f"always_fail must be null or one of {allowed}, got {self.always_fail!r}"
            )
        if self.fault_seed is not None and not _is_int(self.fault_seed):
            raise ValueError(f"fault_seed must be null or an integer, got {self.fault_seed!r}")
        for name in _LIMITS:
            value = getattr(self, name)
            if value is not None and not (_is_int(value) and value > 0):
                raise ValueError(
                    f"{name} must be null (unlimited) or an integer > 0, got {value!r}"
                )
        window = self.quota_window_s
        if not (_is_number(window) and math.isfinite(window) and window > 0):
            raise ValueError(f"quota_window_s must be a number of seconds > 0, got {window!r}")
        self._check_outcomes()

    def _check_outcomes(self) -> None:
        for name, allowed, optional in (
            ("quota_shape", QUOTA_SHAPES, False),
            ("quota_tier", QUOTA_TIERS, False),
            ("spend_tier", SPEND_TIERS, False),
            ("prompt_block_reason", PROMPT_BLOCK_REASONS, True),
            ("blocked_finish_reason", BLOCKED_FINISH_REASONS, True),
            ("empty_answer", EMPTY_ANSWERS, True),
            ("mask_format", MASK_FORMATS, True),
        ):
            value = getattr(self, name)
            if (value is None and optional) or (value in allowed and not isinstance(value, bool)):
                continue
            choices = ", ".join(map(str, allowed))
            prefix = "null or " if optional else ""
            raise ValueError(f"{name} must be {prefix}one of {choices}, got {value!r}")
        chosen = [
            name
            for name in ("prompt_block_reason", "blocked_finish_reason", "empty_answer")
            if getattr(self, name) is not None
        ]
        if len(chosen) > 1:
            raise ValueError(f"set at most one of {', '.join(chosen)}")
        if not (_is_int(self.outcome_every) and self.outcome_every >= 1):
            raise ValueError(f"outcome_every must be an integer >= 1, got {self.outcome_every!r}")
        thoughts = self.thoughts_tokens
        if thoughts is not None and not (_is_int(thoughts) and thoughts >= 0):
            raise ValueError(f"thoughts_tokens must be null or an integer >= 0, got {thoughts!r}")
        limit = self.spend_limit_usd
        if limit is not None and not (_is_number(limit) and math.isfinite(limit) and limit > 0):
            raise ValueError(f"spend_limit_usd must be null or a number > 0, got {limit!r}")
        spend_window = self.spend_window_s
        if not (_is_number(spend_window) and math.isfinite(spend_window) and spend_window > 0):
            raise ValueError(
                f"spend_window_s must be a number of seconds > 0, got {spend_window!r}"
            )
        if not isinstance(self.priority_downgrade, bool):
            raise ValueError(
                f"priority_downgrade must be true or false, got {self.priority_downgrade!r}"
            )

    def _check_batch(self) -> None:
        if not isinstance(self.batch_stall, bool):
            raise ValueError(f"batch_stall must be true or false, got {self.batch_stall!r}")
        for name in BATCH_COUNTS:
            value = getattr(self, name)
            if isinstance(value, bool):  # "batch_fail": true means the next one
                object.__setattr__(self, name, int(value))
            elif not (_is_int(value) and value >= 0):
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        expire = self.batch_expire_after_s
        if expire is not None:
            if not (_is_number(expire) and math.isfinite(expire) and expire >= 0):
                raise ValueError(
                    f"batch_expire_after_s must be null or a number of seconds >= 0, got {expire!r}"
                )
            object.__setattr__(self, "batch_expire_after_s", float(expire))
        status = self.batch_fail_line_status
        if not (_is_int(status) and status in BATCH_LINE_STATUSES):
            allowed = ", ".join(map(str, BATCH_LINE_STATUSES))
            raise ValueError(f"batch_fail_line_status must be one of {allowed}, got {status!r}")

    def outcome(self) -> tuple[str, str] | None:
        """The forced outcome (setting name, value), or None for normal answers."""
        for name in ("prompt_block_reason", "blocked_finish_reason", "empty_answer"):
            value = getattr(self, name)
            if value is not None:
                return name, value
        return None

    def updated(self, changes: Mapping[str, Any]) -> FaultSettings:
        """A copy with ``changes`` (field name -> JSON value) applied and checked.

        Raises ValueError for an unknown field or a bad value; nothing is applied then.
        """
        known = fault_field_names()
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(
                f"unknown fault setting(s): {', '.join(unknown)}; known: {', '.join(known)}"
            )
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON object (``GET /_emulator/faults``)."""
        return dataclasses.asdict(self)


def fault_field_names() -> tuple[str, ...]:
    """Names of every fault and quota setting, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(FaultSettings))


def new_rng(seed: int | None) -> random.Random:
    """The generator the fault draws come from (None = seeded from the OS)."""
    return random.Random(seed)


def decide_fault(settings: FaultSettings, rng: random.Random) -> str | None:
    """The fault one generateContent call suffers, or None for a normal answer.

    Returns ``str(always_fail)``, ``"daily_quota"``, ``"503"``, ``"500"``, ``"429"`` or
    ``"hang"``. Exactly two numbers are drawn per call whatever the settings, so with a
    fixed seed the Nth call draws the same numbers even after the rates change.
    """
    failure_draw = rng.random()
    hang_draw = rng.random()
    if settings.always_fail is not None:
        return str(settings.always_fail)
    if settings.daily_quota_exhausted:
        return DAILY_QUOTA
    threshold = 0.0
    for kind, rate in (
        ("503", settings.fail_503_rate),
        ("500", settings.fail_500_rate),
        ("429", settings.fail_429_rate),
    ):
        threshold += rate
        if failure_draw < threshold:
            return kind
    if hang_draw < settings.hang_rate:
        return HANG
    return None
