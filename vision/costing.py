"""Estimates and actual costs of jobs, from the token rules and the price table."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from vision.estimate import Estimate, estimate_job
from vision.pricing import PriceTable, load_prices, usage_cost
from vision.tasks import JobOptions, TaskKind, build_prompt, generation_config
from vision.tokens import TokenRules, fit_within, load_token_rules

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
    """The token rules and prices in force (defaults, or overridden from files)."""

    rules: TokenRules
    prices: PriceTable

    @classmethod
    def load(
        cls, *, token_rules: dict[str, Any] | None = None, prices: dict[str, Any] | None = None
    ) -> CostBook:
        return cls(rules=load_token_rules(token_rules), prices=load_prices(prices))

    def estimate(
        self,
        *,
        task: TaskKind,
        model: str,
        prompt: str | None,
        labels: list[str] | None,
        options: dict[str, Any],
        schema: dict[str, Any] | None,
        sizes: list[tuple[int, int]],
    ) -> Estimate:
        """The estimate of a job as the worker will send it (downscale and thinking included)."""
        parsed = JobOptions.model_validate(options)
        if parsed.max_side:
            sizes = [
                fit_within(w, h, parsed.max_side) if max(w, h) > parsed.max_side else (w, h)
                for w, h in sizes
            ]
        config = generation_config(task, model, parsed, schema)
        thinking = config.get("thinking_config", {}).get("thinking_budget")
        return estimate_job(
            model=model,
            task=task,
            prompt_text=build_prompt(task, prompt=prompt, labels=labels, options=parsed),
            images=sizes,
            max_output_tokens=parsed.max_output_tokens,
            thinking_budget=thinking,
            media_resolution=parsed.media_resolution,
            image_media_resolution=parsed.image_media_resolution,
            rules=self.rules,
            prices=self.prices,
        )

    def call_cost(self, model: str, usage: dict[str, Any] | None) -> Decimal | None:
        """What one Gemini call cost from its usage_metadata; None for an unpriced model."""
        price = self.prices.price_for(model)
        if price is None or usage is None:
            return None
        return usage_cost(price, usage)


def reservation_nusd(estimate: dict[str, Any]) -> int:
    """What admission holds against the budget: the estimate's maximum (0 if unknown)."""
    cost = estimate.get("cost_usd")
    if not cost:
        return 0
    return to_nano(Decimal(cost["max"]), up=True)
