"""Estimates and actual costs of jobs, from the model catalogue."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from visionq.vision.catalogue import Catalogue, ServiceTier, load_catalogue
from visionq.vision.estimate import Estimate, estimate_job
from visionq.vision.pricing import format_usd, usage_cost
from visionq.vision.tasks import JobOptions, TaskKind, build_prompt
from visionq.vision.tokens import fit_within

NANO = Decimal(1_000_000_000)


def to_nano(amount: Decimal, *, up: bool = False) -> int:
    """USD to integer nano-USD; reservations round up so they always cover the cost."""
    return int((amount * NANO).to_integral_value(ROUND_CEILING if up else ROUND_HALF_UP))


def from_nano(amount: int) -> Decimal:
    return Decimal(amount) / NANO


def usd_text(amount_nusd: int) -> str:
    """Nano-USD as a plain decimal string ("0.0000774"), never in exponent form."""
    text = format(from_nano(amount_nusd), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class CostBook:
    """The model catalogue in force (packaged, or overridden from a file), for money."""

    catalogue: Catalogue

    @classmethod
    def load(cls, override: dict[str, Any] | None = None) -> CostBook:
        return cls(catalogue=load_catalogue(override))

    def estimate(
        self,
        *,
        task: TaskKind,
        model: str,
        prompt: str | None,
        labels: list[str] | None,
        options: JobOptions,
        sizes: list[tuple[int, int]],
        day: dt.date | None = None,
        tier: ServiceTier = ServiceTier.STANDARD,
    ) -> Estimate:
        """The estimate of a job as the worker will send it (downscale and thinking included)."""
        if options.max_side:
            sizes = [
                fit_within(w, h, options.max_side) if max(w, h) > options.max_side else (w, h)
                for w, h in sizes
            ]
        return estimate_job(
            model=model,
            task=task,
            prompt_text=build_prompt(task, prompt=prompt, labels=labels, options=options),
            images=sizes,
            options=options,
            catalogue=self.catalogue,
            day=day or today(),
            tier=tier,
        )

    def call_cost(
        self,
        model: str,
        usage: dict[str, Any] | None,
        *,
        day: dt.date | None = None,
        tier: ServiceTier = ServiceTier.STANDARD,
    ) -> Decimal | None:
        """What one Gemini call cost from its usage_metadata; None for an unpriced model."""
        entry = self.catalogue.entry(model)
        price = entry.price(day or today(), tier) if entry is not None else None
        if price is None or usage is None:
            return None
        return usage_cost(price, usage)


def today() -> dt.date:
    """The UTC date whose prices apply now (prices change on dates)."""
    return dt.datetime.now(dt.UTC).date()


def reservation_nusd(estimate: Estimate) -> int:
    """What admission holds against the budget: the estimate's maximum (0 if unknown), as
    stored and shown (``format_usd``'s decimals), so the hold matches the figure a user sees."""
    if estimate.cost_usd is None:
        return 0
    return to_nano(Decimal(format_usd(estimate.cost_usd.max)), up=True)
