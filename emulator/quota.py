"""Per-model sliding-window quotas (requests and prompt tokens) and their statistics.

A window at time t covers admissions in (t - window, t]. Only admissions still inside the
window are kept, which is all that enforcement needs, and enough to get the exact busiest
window: a busiest window can always be slid until it ends at an admission, so measuring
at every admission finds it.

Pure bookkeeping: the caller passes the time, so tests need no clock or sleeping.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

RPM = "rpm"
TPM = "tpm"


@dataclass(frozen=True)
class QuotaViolation:
    """One exceeded limit: ``limit`` is "rpm" or "tpm", ``quota_value`` its configured size."""

    limit: str
    quota_value: int


@dataclass(frozen=True)
class QuotaRejection:
    """Why a call was refused and how long until the window has room for it."""

    violations: tuple[QuotaViolation, ...]
    retry_after_s: float


@dataclass
class ModelWindow:
    """Admissions of one model inside the current window, and the busiest window seen."""

    admissions: deque[tuple[float, int]] = field(default_factory=deque)
    tokens: int = 0
    max_requests: int = 0
    max_tokens: int = 0

    def prune(self, now: float, window: float) -> None:
        """Drop admissions that left the window (at or before ``now - window``)."""
        while self.admissions and self.admissions[0][0] <= now - window:
            _, tokens = self.admissions.popleft()
            self.tokens -= tokens

    def rpm_wait(self, rpm: int, now: float, window: float) -> float | None:
        """Seconds until one more request fits under ``rpm``; None if it fits now."""
        excess = len(self.admissions) + 1 - rpm
        if excess <= 0:
            return None
        # The limit may have been lowered at runtime: several admissions may have to leave.
        return self.admissions[excess - 1][0] + window - now

    def tpm_wait(self, tpm: int, tokens: int, now: float, window: float) -> float | None:
        """Seconds until ``tokens`` more fit under ``tpm``; None if they fit now.

        A request larger than ``tpm`` never fits; it is told to wait until the window is
        empty (the whole window if it already is).
        """
        needed = self.tokens + tokens - tpm
        if needed <= 0:
            return None
        freed = 0
        for stamp, spent in self.admissions:
            freed += spent
            if freed >= needed:
                return stamp + window - now
        return (self.admissions[-1][0] if self.admissions else now) + window - now

    def admit(self, now: float, tokens: int) -> None:
        """Record an admission and update the busiest-window figures."""
        self.admissions.append((now, tokens))
        self.tokens += tokens
        self.max_requests = max(self.max_requests, len(self.admissions))
        self.max_tokens = max(self.max_tokens, self.tokens)


def _round_up_ms(seconds: float) -> float:
    # Rounded up so a client that waits exactly the advertised delay finds room.
    return math.ceil(max(seconds, 0.0) * 1000) / 1000


class QuotaTracker:
    """The windows of every model that has admitted or been refused a call."""

    def __init__(self) -> None:
        self._models: dict[str, ModelWindow] = {}

    def try_admit(
        self,
        model: str,
        tokens: int,
        now: float,
        *,
        rpm: int | None,
        tpm: int | None,
        window: float,
    ) -> QuotaRejection | None:
        """Admit one call of ``tokens`` prompt tokens, or say why not (nothing recorded)."""
        state = self._models.setdefault(model, ModelWindow())
        state.prune(now, window)
        violations: list[QuotaViolation] = []
        waits: list[float] = []
        if rpm is not None and (wait := state.rpm_wait(rpm, now, window)) is not None:
            violations.append(QuotaViolation(RPM, rpm))
            waits.append(wait)
        if tpm is not None and (wait := state.tpm_wait(tpm, tokens, now, window)) is not None:
            violations.append(QuotaViolation(TPM, tpm))
            waits.append(wait)
        if violations:
            return QuotaRejection(tuple(violations), _round_up_ms(max(waits)))
        state.admit(now, tokens)
        return None

    def stats(self, now: float, window: float) -> dict[str, Any]:
        """Busiest windows (over all models and per model) and the current window load."""
        by_model: dict[str, dict[str, int]] = {}
        for model, state in sorted(self._models.items()):
            current = [(t, n) for t, n in state.admissions if t > now - window]
            by_model[model] = {
                "max_requests_in_window": state.max_requests,
                "max_tokens_in_window": state.max_tokens,
                "requests_in_window": len(current),
                "tokens_in_window": sum(n for _, n in current),
            }
        return {
            "max_requests_in_window": max(
                (m["max_requests_in_window"] for m in by_model.values()), default=0
            ),
            "max_tokens_in_window": max(
                (m["max_tokens_in_window"] for m in by_model.values()), default=0
            ),
            "window_by_model": by_model,
        }
