"""List prices per model and the cost of a call, in exact decimal USD.

Pure: the only data read is the packaged default table (``vision/data/prices.json``, through
importlib.resources); overrides come in as already-parsed dicts. Format::

    {"as_of": "2026-11-01", "currency": "USD", "batch_factor": 0.5, "note": "...",
     "models": {
       "<model-name prefix>": {"input": 0.30, "output": 2.50, "cached_input": 0.03,
                               "batch_factor": 0.5, "note": "..."},
       "<prefix>": {"tiers": [{"max_prompt_tokens": 200000, "input": 1.25, "output": 10.0},
                              {"input": 2.50, "output": 15.00}]}}}

Prices are USD per 1M tokens, given as JSON numbers or decimal strings (both are read as
exact decimals). ``cached_input``, ``batch_factor`` (per model, overriding the table's) and
``note`` are optional. A model has either ``input``/``output`` or ``tiers``: the first tier
whose ``max_prompt_tokens`` is >= the prompt's tokens applies to the whole call (input and
output), the last tier has no limit. The longest model-name prefix wins. Output prices
apply to candidates + thoughts tokens.

Money is ``Decimal`` throughout, exact (no rounding); round only for display
(``format_usd``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vision.validation import describe_errors

PER_TOKENS = Decimal(1_000_000)
DISPLAY_DECIMALS = 10
_PACKAGE_FILE = "prices.json"


class PricesError(ValueError):
    """A price table (packaged or override) that does not validate."""


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
    batch_factor: Decimal | None = Field(default=None, gt=0, le=1)
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


class PriceTable(BaseModel):
    """Dated prices by model-name prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: dt.date
    currency: Literal["USD"] = "USD"
    models: dict[str, ModelPrice]
    batch_factor: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)
    note: str | None = None

    @model_validator(mode="after")
    def _check_prefixes(self) -> PriceTable:
        if any(not prefix.strip() for prefix in self.models):
            raise ValueError("model prefixes must be non-empty")
        return self

    def match(self, model: str) -> tuple[str, ModelPrice] | None:
        """(prefix, price) of the longest prefix of ``model`` (``models/`` ignored).

        The returned price carries the effective ``batch_factor`` (its own or the table's).
        """
        name = model.removeprefix("models/")
        prefixes = [prefix for prefix in self.models if name.startswith(prefix)]
        if not prefixes:
            return None
        best = max(prefixes, key=len)
        price = self.models[best]
        if price.batch_factor is None:
            price = price.model_copy(update={"batch_factor": self.batch_factor})
        return best, price

    def price_for(self, model: str) -> ModelPrice | None:
        """The price of ``model``; None when the table does not know it."""
        found = self.match(model)
        return found[1] if found else None


def parse_prices(data: Any, *, source: str = "table") -> PriceTable:
    """Validate a whole price table (a parsed JSON object); raises PricesError."""
    try:
        return PriceTable.model_validate(data)
    except ValidationError as error:
        raise PricesError(describe_errors(error, "price table", source)) from error


def default_prices_data() -> dict[str, Any]:
    """The packaged default table as parsed JSON, numbers read as Decimal."""
    text = resources.files("vision").joinpath("data", _PACKAGE_FILE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text, parse_float=Decimal)
    return data


def load_prices(override: dict[str, Any] | None = None) -> PriceTable:
    """The packaged prices with ``override`` (same format, every key optional) applied.

    ``models`` entries replace or add whole entries per prefix; ``as_of``, ``currency``,
    ``batch_factor`` and ``note`` replace the defaults' when given. Parse the user's file
    with ``json.loads(text, parse_float=Decimal)`` for exact prices (floats work too: they
    are converted through their shortest repr, so 0.3 stays 0.3). Raises PricesError.
    """
    data = default_prices_data()
    if override is None:
        return parse_prices(data, source="packaged defaults")
    if not isinstance(override, dict):
        raise PricesError(
            f"invalid price table (override): expected a JSON object, got {type(override).__name__}"
        )
    allowed = {"as_of", "currency", "models", "batch_factor", "note"}
    unknown = sorted(set(override) - allowed)
    if unknown:
        raise PricesError(
            "invalid price table (override): unknown top-level keys "
            f"{', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )
    models = override.get("models", {})
    if not isinstance(models, dict):
        raise PricesError("invalid price table (override): 'models' must be an object")
    merged = {**data, **{key: value for key, value in override.items() if key != "models"}}
    merged["models"] = {**data["models"], **models}
    return parse_prices(merged, source="override")


def cost(
    price: ModelPrice,
    *,
    prompt_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    batch: bool = False,
) -> Decimal:
    """Exact USD cost of one call.

    ``prompt_tokens`` is the whole prompt (as usageMetadata.promptTokenCount, cached tokens
    included) and picks the tier; ``output_tokens`` is candidates + thoughts. Cached tokens
    are charged at ``cached_input`` when the tier has one, else at the input price.
    ``batch`` multiplies by the batch factor (the table's, 0.5, unless the model sets one).
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
    if batch:
        total *= price.batch_factor if price.batch_factor is not None else Decimal("0.5")
    return total


def usage_cost(price: ModelPrice, usage: Mapping[str, Any], *, batch: bool = False) -> Decimal:
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
        batch=batch,
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
