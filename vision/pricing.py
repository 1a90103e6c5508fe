"""Prices of one model and tier, and the cost of a call, in exact decimal USD.

Pure. Prices come from the model catalogue (``vision/catalogue.py``), per model, service
tier and date. A price is USD per 1M tokens, given as a JSON number or a decimal string
(both are read as exact decimals)::

    {"input": 0.30, "output": 2.50, "cached_input": 0.03, "note": "..."}
    {"tiers": [{"max_prompt_tokens": 200000, "input": 1.25, "output": 10.0},
               {"input": 2.50, "output": 15.00}]}

A price has either ``input``/``output`` or ``tiers``: the first tier whose
``max_prompt_tokens`` is >= the prompt's tokens applies to the whole call (input and
output), the last tier has no limit. Output prices apply to candidates + thoughts tokens.

Money is ``Decimal`` throughout, exact (no rounding); round only for display
(``format_usd``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

PER_TOKENS = Decimal(1_000_000)
DISPLAY_DECIMALS = 10


class PriceTier(BaseModel):
    """Prices for prompts up to ``max_prompt_tokens`` (None: no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_prompt_tokens: int | None = Field(default=None, ge=1)
    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    cached_input: Decimal | None = Field(default=None, ge=0)
    note: str | None = None


class ModelPrice(BaseModel):
    """One model's prices: flat (``input``/``output``) or by prompt-size ``tiers``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Decimal | None = Field(default=None, ge=0)
    output: Decimal | None = Field(default=None, ge=0)
    cached_input: Decimal | None = Field(default=None, ge=0)
    tiers: list[PriceTier] | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _check_shape(self) -> ModelPrice:
        flat = self.input is not None or self.output is not None
        if self.tiers is not None:
            if flat or self.cached_input is not None:
                raise ValueError(
                    "give either 'input'/'output' (and 'cached_input') or 'tiers', not both"
                )
            _check_tiers(self.tiers)
        elif self.input is None or self.output is None:
            raise ValueError("needs both 'input' and 'output' prices (or 'tiers')")
        return self

    def all_tiers(self) -> list[PriceTier]:
        """The tiers, a flat price being a single open-ended tier."""
        if self.tiers is not None:
            return list(self.tiers)
        assert self.input is not None and self.output is not None  # validated
        return [PriceTier(input=self.input, output=self.output, cached_input=self.cached_input)]

    def tier_for(self, prompt_tokens: int) -> PriceTier:
        """The tier that applies to a call with ``prompt_tokens`` prompt tokens."""
        tiers = self.all_tiers()
        for tier in tiers:
            if tier.max_prompt_tokens is None or prompt_tokens <= tier.max_prompt_tokens:
                return tier
        return tiers[-1]  # unreachable: the last tier is open-ended


def _check_tiers(tiers: list[PriceTier]) -> None:
    if not tiers:
        raise ValueError("'tiers' must not be empty")
    if tiers[-1].max_prompt_tokens is not None:
        raise ValueError("the last tier must have no 'max_prompt_tokens' (it has no limit)")
    limits = [tier.max_prompt_tokens for tier in tiers[:-1]]
    if any(limit is None for limit in limits):
        raise ValueError("every tier but the last needs 'max_prompt_tokens'")
    if any(a is not None and b is not None and a >= b for a, b in itertools.pairwise(limits)):
        raise ValueError("tiers' 'max_prompt_tokens' must increase")


def cost(
    price: ModelPrice,
    *,
    prompt_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
) -> Decimal:
    """Exact USD cost of one call.

    ``prompt_tokens`` is the whole prompt (as usageMetadata.promptTokenCount, cached tokens
    included) and picks the tier; ``output_tokens`` is candidates + thoughts. Cached tokens
    are charged at ``cached_input`` when the tier has one, else at the input price.
    """
    if min(prompt_tokens, output_tokens, cached_tokens) < 0:
        raise ValueError("token counts must be >= 0")
    if cached_tokens > prompt_tokens:
        raise ValueError(
            f"cached_tokens ({cached_tokens}) cannot exceed prompt_tokens ({prompt_tokens})"
        )
    tier = price.tier_for(prompt_tokens)
    cached_price = tier.cached_input if tier.cached_input is not None else tier.input
    total = (
        (prompt_tokens - cached_tokens) * tier.input
        + cached_tokens * cached_price
        + output_tokens * tier.output
    ) / PER_TOKENS
    return total


def usage_cost(price: ModelPrice, usage: Mapping[str, Any]) -> Decimal:
    """The cost of a response's ``usageMetadata`` (camelCase or snake_case keys).

    Output = candidates + thoughts tokens; missing counts are 0.
    """

    def count(camel: str, snake: str) -> int:
        value = usage.get(camel, usage.get(snake))
        return int(value or 0)

    return cost(
        price,
        prompt_tokens=count("promptTokenCount", "prompt_token_count"),
        output_tokens=count("candidatesTokenCount", "candidates_token_count")
        + count("thoughtsTokenCount", "thoughts_token_count"),
        cached_tokens=count("cachedContentTokenCount", "cached_content_token_count"),
    )


def format_usd(amount: Decimal, decimals: int = DISPLAY_DECIMALS) -> str:
    """``amount`` rounded (half even) to at most ``decimals`` places, fixed-point, no
    trailing zeros: Decimal("0.0000774") -> "0.0000774", Decimal("5E-8") -> "0.00000005".
    """
    rounded = amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
    text = format(rounded, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
