"""Price table and cost arithmetic (vision.pricing)."""

import json
from decimal import Decimal
from typing import Any

import pytest

from vision.pricing import (
    ModelPrice,
    PricesError,
    cost,
    format_usd,
    load_prices,
    parse_prices,
    usage_cost,
)

PRICES = load_prices()


def price(model: str) -> ModelPrice:
    found = PRICES.price_for(model)
    assert found is not None, model
    return found


def test_packaged_prices_are_the_gemini_md_list_prices() -> None:
    assert PRICES.as_of.isoformat() == "2026-11-01"
    assert PRICES.currency == "USD"
    assert PRICES.batch_factor == Decimal("0.5")
    flash = price("gemini-2.5-flash")
    assert (flash.input, flash.output) == (Decimal("0.30"), Decimal("2.50"))
    lite = price("gemini-2.5-flash-lite")
    assert (lite.input, lite.output) == (Decimal("0.10"), Decimal("0.40"))
    pro = price("gemini-2.5-pro").tier_for(1)
    assert (pro.input, pro.output, pro.max_prompt_tokens) == (
        Decimal("1.25"),
        Decimal("10.00"),
        200_000,
    )
    three = price("gemini-3-flash-preview")
    assert (three.input, three.output) == (Decimal("0.50"), Decimal("3.00"))
    assert price("gemini-3.1-pro-preview").tier_for(1).input == Decimal("2.00")
    # Figures not in GEMINI.md carry a note.
    assert price("gemini-2.0-flash").note
    assert price("gemini-3.1-pro-preview").all_tiers()[1].note


def test_longest_prefix_and_unknown() -> None:
    assert price("gemini-2.5-flash-lite-preview-09-2025").input == Decimal("0.10")
    assert price("gemini-2.5-flash-preview-05-20").input == Decimal("0.30")
    assert price("models/gemini-2.5-flash").input == Decimal("0.30")
    assert PRICES.match("gemini-2.5-flash-lite")[0] == "gemini-2.5-flash-lite"  # type: ignore[index]
    assert PRICES.price_for("gemini-1.5-pro") is None
    assert PRICES.price_for("gpt-4o") is None


def test_decimal_precision() -> None:
    flash = price("gemini-2.5-flash")
    assert cost(flash, prompt_tokens=258, output_tokens=0) == Decimal("0.0000774")
    assert format_usd(cost(flash, prompt_tokens=258, output_tokens=0)) == "0.0000774"
    assert cost(flash, prompt_tokens=1, output_tokens=0) == Decimal("0.0000003")
    assert cost(flash, prompt_tokens=0, output_tokens=1) == Decimal("0.0000025")
    assert cost(flash, prompt_tokens=1_000_000, output_tokens=1_000_000) == Decimal("2.80")
    lite = price("gemini-2.5-flash-lite")
    assert cost(lite, prompt_tokens=1, output_tokens=0, batch=True) == Decimal("0.00000005")
    assert format_usd(Decimal("0.00000005")) == "0.00000005"


def test_output_covers_thoughts_in_usage_cost() -> None:
    flash = price("gemini-2.5-flash")
    usage = {
        "promptTokenCount": 1290,
        "candidatesTokenCount": 100,
        "thoughtsTokenCount": 400,
        "totalTokenCount": 1790,
    }
    expected = (1290 * Decimal("0.30") + 500 * Decimal("2.50")) / 1_000_000
    assert usage_cost(flash, usage) == expected == Decimal("0.001637")
    snake = {"prompt_token_count": 1290, "candidates_token_count": 500}
    assert usage_cost(flash, snake) == expected
    assert usage_cost(flash, usage, batch=True) == expected / 2


def test_pro_tier_switch_at_200k() -> None:
    pro = price("gemini-2.5-pro")
    at = cost(pro, prompt_tokens=200_000, output_tokens=1000)
    above = cost(pro, prompt_tokens=200_001, output_tokens=1000)
    assert at == Decimal("0.25") + Decimal("0.01")
    assert above == (200_001 * Decimal("2.50") + 1000 * Decimal("15.00")) / 1_000_000
    assert above == Decimal("0.5150025")
    assert cost(pro, prompt_tokens=200_001, output_tokens=0, batch=True) == Decimal("0.25000125")


def test_cached_tokens() -> None:
    flash = price("gemini-2.5-flash")
    # No cached price: cached tokens cost the input price.
    assert cost(flash, prompt_tokens=1000, output_tokens=0, cached_tokens=600) == cost(
        flash, prompt_tokens=1000, output_tokens=0
    )
    cheap = ModelPrice(input=Decimal("0.30"), output=Decimal("2.50"), cached_input=Decimal("0.03"))
    assert cost(cheap, prompt_tokens=1000, output_tokens=0, cached_tokens=600) == Decimal(
        "0.000138"
    )
    with pytest.raises(ValueError, match="cannot exceed"):
        cost(flash, prompt_tokens=10, output_tokens=0, cached_tokens=11)
    with pytest.raises(ValueError, match=">= 0"):
        cost(flash, prompt_tokens=-1, output_tokens=0)


def test_override_replaces_and_adds() -> None:
    table = load_prices(
        json.loads(
            '{"as_of": "2026-12-01", "batch_factor": 0.4, "models": {'
            '"gemini-2.5-flash": {"input": 0.35, "output": 3.00},'
            '"gemini-9": {"input": 1, "output": 2, "batch_factor": 0.25}}}'
        )
    )
    assert table.as_of.isoformat() == "2026-12-01"
    flash = table.price_for("gemini-2.5-flash")
    assert flash is not None
    assert flash.input == Decimal("0.35")  # a float 0.35 becomes exactly 0.35
    assert flash.batch_factor == Decimal("0.4")
    nine = table.price_for("gemini-9-ultra")
    assert nine is not None
    assert cost(nine, prompt_tokens=1_000_000, output_tokens=0, batch=True) == Decimal("0.25")
    pro = table.price_for("gemini-2.5-pro")
    assert pro is not None
    assert pro.all_tiers() == price("gemini-2.5-pro").all_tiers()  # untouched
    assert pro.batch_factor == Decimal("0.4")  # the override's table factor
    assert load_prices() == PRICES


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"models": {"x": {"input": 1}}}, "needs both 'input' and 'output'"),
        ({"models": {"x": {"input": -1, "output": 1}}}, "models.x.input"),
        ({"models": {"x": {"input": "abc", "output": 1}}}, "models.x.input"),
        ({"models": {"x": {"input": 1, "output": 1, "tiers": []}}}, "not both"),
        ({"models": {"x": {"tiers": []}}}, "must not be empty"),
        (
            {"models": {"x": {"tiers": [{"max_prompt_tokens": 10, "input": 1, "output": 1}]}}},
            "the last tier must have no 'max_prompt_tokens'",
        ),
        (
            {
                "models": {
                    "x": {
                        "tiers": [
                            {"max_prompt_tokens": 10, "input": 1, "output": 1},
                            {"max_prompt_tokens": 5, "input": 1, "output": 1},
                            {"input": 1, "output": 1},
                        ]
                    }
                }
            },
            "must increase",
        ),
        ({"models": {"x": {"input": 1, "output": 1, "extra": 1}}}, "models.x.extra"),
        ({"currency": "EUR"}, "currency"),
        ({"as_of": "yesterday"}, "as_of"),
        ({"batch_factor": 0}, "batch_factor"),
        ({"price": {}}, "unknown top-level keys price"),
    ],
)
def test_invalid_override_is_a_clear_error(override: dict[str, Any], message: str) -> None:
    with pytest.raises(PricesError) as caught:
        load_prices(override)
    assert "invalid price table (override)" in str(caught.value)
    assert message in str(caught.value)


def test_invalid_whole_table() -> None:
    with pytest.raises(PricesError, match="as_of: Field required"):
        parse_prices({"models": {}})


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal(0), "0"),
        (Decimal("0.0000774"), "0.0000774"),
        (Decimal("1.50"), "1.5"),
        (Decimal("12"), "12"),
        (Decimal("0.00000000004"), "0"),
        (Decimal("0.00000000006"), "0.0000000001"),
        (Decimal("1E+3"), "1000"),
    ],
)
def test_format_usd(amount: Decimal, text: str) -> None:
    assert format_usd(amount) == text
