"""The rolling spend limit (dollars per window, 10 minutes on Gemini) and its bookkeeping.

Each answered generate call is priced from the answering model's catalogue price, by its
billed tokens (output = candidates + thoughts) and the service tier's factor. A call is
refused with the spend-limit 429 while the spend inside the window has reached the limit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from visionq.emulator.catalog import Catalogue, ModelSpec

PER_MILLION = 1_000_000


def call_cost_usd(
    catalogue: Catalogue,
    spec: ModelSpec,
    tier: str,
    tokens: tuple[int, int],
    now: float,
) -> float:
    """USD of one call billed ``tokens`` (prompt, output) at the price in force on the (UTC)
    day of ``now``; 0 if the model has no price."""
    prompt_tokens, output_tokens = tokens
    day = datetime.fromtimestamp(now, UTC).date().isoformat()
    price = spec.price_on(day)
    if price is None:
        return 0.0
    usd = (prompt_tokens * price.input + output_tokens * price.output) / PER_MILLION
    return usd * catalogue.tier_price_factor[tier]


@dataclass
class SpendWindow:
    """Spend of the calls inside the last ``window`` seconds (monotonic times)."""

    entries: deque[tuple[float, float]] = field(default_factory=deque)
    total_usd: float = 0.0

    def _prune(self, now: float, window: float) -> None:
        while self.entries and self.entries[0][0] <= now - window:
            self.entries.popleft()

    def spent(self, now: float, window: float) -> float:
        """USD spent inside the window ending at ``now``."""
        self._prune(now, window)
        return sum(usd for _, usd in self.entries)

    def wait_s(self, now: float, window: float, limit: float) -> float | None:
        """Seconds until the window's spend falls below ``limit`` (> 0); None if it is."""
        spent = self.spent(now, window)
        if spent < limit:
            return None
        for moment, usd in self.entries:
            spent -= usd
            if spent < limit:
                return moment + window - now
        return window  # not reached: the spend falls to 0 < limit

    def record(self, now: float, usd: float) -> None:
        """Count one answered call's cost."""
        self.entries.append((now, usd))
        self.total_usd += usd
