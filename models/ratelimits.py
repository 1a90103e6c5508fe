"""The Gemini rate limits of VISIONQ_RATE_LIMITS: their rules, declared once.

Settings parse them once when they load (models/settings.py holds the ``ModelQuota``
values ``parse_quotas`` returns) and the worker's limiter (worker/ratelimit.py) paces calls
by them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["ALL_MODELS", "DEFAULT_USD_WINDOW_S", "ModelQuota", "parse_quotas"]

_QUOTA_KEYS = ("rpm", "tpm", "usd", "window_s")
# The entry that applies to every model, all of them together.
ALL_MODELS = "*"
# Gemini's spend limits are over a rolling 10 minutes.
DEFAULT_USD_WINDOW_S = 600.0


def _check_limit(name: str, value: object) -> None:
    # bool is an int subclass, but `"rpm": true` is certainly a mistake.
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name!r} must be a positive integer or null, got {value!r}")


def _positive(name: str, value: object) -> Decimal | None:
    """A positive finite number (JSON number or decimal string) as an exact Decimal."""
    if value is None:
        return None
    try:
        number = Decimal(str(value)) if not isinstance(value, bool) else Decimal(0)
    except InvalidOperation:
        number = Decimal(0)
    if not number.is_finite() or number <= 0:
        raise ValueError(f"{name!r} must be a positive number or null, got {value!r}")
    return number


@dataclass(frozen=True)
class ModelQuota:
    """Limits of one model (or of all, ``"*"``) per window; None means unlimited.

    ``window_s`` is this entry's window for all its limits; None means the limiter's
    (``VISIONQ_RATE_WINDOW_S``) for rpm and tpm and ``DEFAULT_USD_WINDOW_S`` for usd.
    """

    rpm: int | None  # requests per window
    tpm: int | None  # input tokens per window
    usd: Decimal | None = None  # estimated dollars per window
    window_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            _check_limit(name, getattr(self, name))
        _positive("usd", self.usd)
        if self.window_s is not None and not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ValueError(f"'window_s' must be a positive number, got {self.window_s!r}")

    @property
    def unlimited(self) -> bool:
        """Neither requests, tokens nor dollars are limited."""
        return self.rpm is None and self.tpm is None and self.usd is None

    def as_json(self) -> dict[str, int | float | str]:
        """The entry as VISIONQ_RATE_LIMITS spells it: the limits set, ``usd`` as an exact
        decimal string; ``parse_quotas`` reads it back to an equal quota."""
        shown: dict[str, int | float | str | None] = {
            "rpm": self.rpm,
            "tpm": self.tpm,
            "usd": str(self.usd) if self.usd is not None else None,
            "window_s": self.window_s,
        }
        return {key: value for key, value in shown.items() if value is not None}


def parse_quotas(raw: Mapping[str, Any]) -> dict[str, ModelQuota]:
    """Validate a JSON object like ``{"gemini-3.6-flash": {"rpm": 1000, "tpm": 1000000},
    "*": {"usd": 10}}``.

    Each entry (a model name, or ``"*"`` for all models together) takes ``rpm`` and
    ``tpm`` (positive integers), ``usd`` (a positive number or decimal string: estimated
    dollars per window) and ``window_s`` (its window in seconds); a missing or null limit
    is unlimited. Raises ValueError naming the offending entry and key.
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
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: 'rpm' "
                "(requests per window), 'tpm' (input tokens per window), 'usd' (estimated "
                "dollars per window), 'window_s' (the window, seconds)"
            )
        if not set(spec) - {"window_s"}:
            raise ValueError(
                f"{where}: set 'rpm', 'tpm' and/or 'usd' (leave the model out for no limit)"
            )
        try:
            window = _positive("window_s", spec.get("window_s"))
            quotas[model] = ModelQuota(
                rpm=spec.get("rpm"),
                tpm=spec.get("tpm"),
                usd=_positive("usd", spec.get("usd")),
                window_s=float(window) if window is not None else None,
            )
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
    return quotas
