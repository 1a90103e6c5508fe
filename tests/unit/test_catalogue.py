"""The model catalogue (vision.catalogue): the packaged file, lookup, dated per-tier prices,
overrides, defaults and aliases; and its rows (vision.model_rows)."""

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from visionq.vision.catalogue import (
    BudgetRule,
    CatalogueError,
    MaskFormat,
    ModelStatus,
    PricePeriod,
    ServiceTier,
    ThinkingRule,
    check_default_model,
    default_catalogue_data,
    load_catalogue,
    parse_catalogue,
)
from visionq.vision.levels import ThinkingLevel
from visionq.vision.model_rows import model_rows
from visionq.vision.tasks import TaskKind

CATALOGUE = load_catalogue()
DAY = dt.date(2026, 12, 5)
FLAT_RULE = {"image_rule": "flat", "tile_tokens": 258}


def input_price(model: str, day: dt.date, tier: ServiceTier = ServiceTier.STANDARD) -> Decimal:
    entry = CATALOGUE.entry(model)
    assert entry is not None
    price = entry.price(day, tier)
    assert price is not None
    return price.all_tiers()[0].input


def test_the_packaged_file_validates() -> None:
    assert CATALOGUE.as_of == dt.date(2026, 12, 4)
    assert CATALOGUE.defaults == {"model": "gemini-3.5-flash-lite", "segment": "gemini-3.6-flash"}
    assert CATALOGUE.text.chars_per_token == 4
    assert parse_catalogue(default_catalogue_data()) == CATALOGUE
    for model in CATALOGUE.usable():
        entry = CATALOGUE.models[model]
        assert entry.image_tokens is not None, model
        assert entry.thinking is not None, model
        assert entry.price(DAY) is not None, model
        assert {TaskKind.CAPTION, TaskKind.DETECT} <= entry.tasks, model
    # Every retired id says what to use instead, and that replacement is usable.
    for model, entry in CATALOGUE.models.items():
        if not entry.status.usable:
            assert entry.replacement in CATALOGUE.usable(), model


def test_statuses_in_the_packaged_file() -> None:
    statuses = {model: entry.status for model, entry in CATALOGUE.models.items()}
    assert statuses["gemini-2.5-flash"] is ModelStatus.ROUTED
    assert statuses["gemini-3.5-flash"] is ModelStatus.ROUTED
    assert statuses["gemini-2.5-flash-lite"] is ModelStatus.CLOSED
    assert statuses["gemini-3-pro-preview"] is ModelStatus.SHUT_DOWN
    assert statuses["gemini-3.8-flash"] is ModelStatus.STABLE
    assert CATALOGUE.models["gemini-2.5-flash"].routed_to == "gemini-3.5-flash-lite"
    assert [status for status in ModelStatus if status.usable] == [
        ModelStatus.STABLE,
        ModelStatus.PREVIEW,
        ModelStatus.DEPRECATED,
    ]
    assert CATALOGUE.models["gemini-3.6-flash"].mask_format is MaskFormat.POLYGON
    assert "gemini-2.5-flash" not in CATALOGUE.usable()


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gemini-3.8-flash", "gemini-3.8-flash"),
        ("gemini-3.6-flash-001", "gemini-3.6-flash"),  # a version suffix
        ("models/gemini-3.8-flash", "gemini-3.8-flash"),
        ("gemini-2.0-flash-lite", "gemini-2.0-*"),  # its family
        ("gemini-2.0-flash", "gemini-2.0-*"),
        ("gemini-1.5-pro-002", "gemini-1.5-*"),
        ("gemini-2.5-flash", "gemini-2.5-flash"),
    ],
)
def test_lookup(model: str, key: str) -> None:
    found = CATALOGUE.lookup(model)
    assert found is not None
    assert found[0] == key
    assert found[1] is CATALOGUE.models[key]
    assert CATALOGUE.entry(model) is CATALOGUE.models[key]


@pytest.mark.parametrize(
    "model", ["gpt-4o", "gemma-3", "gemini-2.0", "gemini-3.6-flash-preview", "gemini-9-flash"]
)
def test_unknown_ids_are_not_found(model: str) -> None:
    assert CATALOGUE.lookup(model) is None
    assert CATALOGUE.entry(model) is None


def test_the_longest_family_wins() -> None:
    catalogue = load_catalogue(
        {
            "models": {
                "gemini-2.0-flash-*": {"status": "shut_down", "replacement": "gemini-3.8-flash"}
            }
        }
    )
    found = catalogue.lookup("gemini-2.0-flash-lite")
    assert found is not None
    assert found[0] == "gemini-2.0-flash-*"
    assert found[1].replacement == "gemini-3.8-flash"
    found = catalogue.lookup("gemini-2.0-pro-exp")
    assert found is not None
    assert found[0] == "gemini-2.0-*"


def test_dated_prices() -> None:
    # gemini-3.8-flash doubles on 2027-01-01; both dates of a period are inclusive.
    assert input_price("gemini-3.8-flash", dt.date(2026, 12, 31)) == Decimal("0.75")
    assert input_price("gemini-3.8-flash", dt.date(2027, 1, 1)) == Decimal("1.50")
    assert input_price("gemini-3.8-flash", dt.date(2025, 1, 1)) == Decimal("0.75")
    assert input_price("gemini-3.8-flash", dt.date(2030, 1, 1)) == Decimal("1.50")
    later = input_price("gemini-3.8-flash", dt.date(2027, 1, 1), ServiceTier.BATCH)
    assert later == Decimal("0.75")
    period = PricePeriod.model_validate(
        {"from": "2027-01-01", "until": "2027-01-31", "standard": {"input": 1, "output": 1}}
    )
    assert period.covers(dt.date(2027, 1, 1))
    assert period.covers(dt.date(2027, 1, 31))
    assert not period.covers(dt.date(2026, 12, 31))
    assert not period.covers(dt.date(2027, 2, 1))


def test_tier_prices() -> None:
    for model in ("gemini-3.8-flash", "gemini-3.5-flash-lite"):
        standard = input_price(model, DAY)
        assert input_price(model, DAY, ServiceTier.BATCH) == standard / 2
        assert input_price(model, DAY, ServiceTier.FLEX) == standard / 2
        # Priority: 1.8x standard (Google says 75-100% more; unconfirmed in the notes).
        assert input_price(model, DAY, ServiceTier.PRIORITY) == standard * Decimal("1.8")
    preview = CATALOGUE.models["gemini-3-flash-preview"]
    assert preview.price(DAY, ServiceTier.PRIORITY) is None  # not listed: no known price
    assert CATALOGUE.models["gemini-3-flash-preview"].price(DAY, ServiceTier.FLEX) is None
    # Retired ids have no prices at all.
    assert CATALOGUE.models["gemini-2.5-flash"].price(DAY) is None


def test_a_price_only_for_a_later_day_is_none_before() -> None:
    catalogue = load_catalogue(
        {
            "models": {
                "gemini-3.6-flash": {
                    "prices": [{"from": "2027-01-01", "standard": {"input": 1, "output": 2}}]
                }
            }
        }
    )
    entry = catalogue.models["gemini-3.6-flash"]
    assert entry.price(DAY) is None
    assert entry.price(dt.date(2027, 1, 1)) is not None


def test_override_merges_a_packaged_entry_key_by_key() -> None:
    catalogue = load_catalogue(
        {"models": {"gemini-3.6-flash": {"image_tokens": FLAT_RULE, "note": "measured"}}}
    )
    entry = catalogue.models["gemini-3.6-flash"]
    packaged = CATALOGUE.models["gemini-3.6-flash"]
    assert entry.image_tokens is not None
    assert entry.image_tokens.image_rule == "flat"
    assert entry.note == "measured"
    # Everything else is kept.
    assert entry.prices == packaged.prices
    assert entry.thinking == packaged.thinking
    assert entry.tasks == packaged.tasks
    assert entry.mask_format == packaged.mask_format
    # Other models and the defaults are untouched, and the packaged data is not mutated.
    assert catalogue.models["gemini-3.8-flash"] == CATALOGUE.models["gemini-3.8-flash"]
    assert load_catalogue() == CATALOGUE


def test_override_adds_models_aliases_defaults_and_replaces_top_level_keys() -> None:
    catalogue = load_catalogue(
        {
            "as_of": "2027-02-01",
            "note": "ours",
            "text": {"chars_per_token": 3},
            "defaults": {"model": "gemini-9-flash"},
            "aliases": {"fast": "gemini-9-flash"},
            "models": {
                "gemini-9-flash": {
                    "status": "preview",
                    "prices": [{"standard": {"input": "0.10", "output": "0.40"}}],
                    "image_tokens": FLAT_RULE,
                    "tasks": ["caption"],
                }
            },
        }
    )
    assert catalogue.as_of == dt.date(2027, 2, 1)
    assert catalogue.note == "ours"
    assert catalogue.text_tokens("abcdef") == 2
    assert catalogue.defaults == {"model": "gemini-9-flash", "segment": "gemini-3.6-flash"}
    assert catalogue.aliases["fast"] == "gemini-9-flash"
    assert catalogue.aliases["gemini-flash-latest"] == "gemini-3.8-flash"  # kept
    assert catalogue.entry("gemini-9-flash-001") is catalogue.models["gemini-9-flash"]
    assert catalogue.default_for(TaskKind.CAPTION) == "gemini-9-flash"
    assert catalogue.default_for(TaskKind.SEGMENT) == "gemini-3.6-flash"
    assert "gemini-9-flash" in catalogue.usable()


MODEL = "models.gemini-3.6-flash"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"models": {"gemini-3.6-flash": {"status": "bogus"}}}, f"{MODEL}.status"),
        ({"models": {"gemini-3.6-flash": {"colour": "red"}}}, f"{MODEL}.colour"),
        (
            {"models": {"gemini-3.6-flash": {"image_tokens": {"image_rule": "tiles"}}}},
            f"{MODEL}.image_tokens.image_rule",
        ),
        ({"models": {"gemini-3.6-flash": {"tasks": ["dance"]}}}, f"{MODEL}.tasks"),
        (
            {"models": {"gemini-3.6-flash": {"mask_format": None}}},
            f"{MODEL}: a model that serves segment needs 'mask_format'",
        ),
        (
            {"models": {"gemini-3.6-flash": {"thinking": {"levels": ["HIGH", "LOW"]}}}},
            f"{MODEL}.thinking: levels must be listed lowest first",
        ),
        (
            {
                "models": {
                    "gemini-3.6-flash": {"thinking": {"levels": ["LOW"], "default_level": "HIGH"}}
                }
            },
            "default_level HIGH is not in levels",
        ),
        (
            {"models": {"gemini-3.6-flash": {"thinking": {"levels": ["EXTREME"]}}}},
            f"{MODEL}.thinking.levels.0",
        ),
        (
            {
                "models": {
                    "gemini-3.6-flash": {"thinking": {"budget": {"min": 10, "max": 5, "off": True}}}
                }
            },
            "budget min 10 is above max 5",
        ),
        (
            {"models": {"gemini-3.6-flash": {"prices": [{"batch": {"input": 1, "output": 1}}]}}},
            f"{MODEL}.prices.0.standard",
        ),
        (
            {
                "models": {
                    "gemini-3.6-flash": {
                        "prices": [{"from": "soon", "standard": {"input": 1, "output": 1}}]
                    }
                }
            },
            f"{MODEL}.prices.0.from",
        ),
        (
            {"models": {"new-model": {"status": "stable"}}},
            "models.new-model: a stable model needs 'image_tokens'",
        ),
        (
            {"models": {"new-model": {"status": "routed"}}},
            "models.new-model: a routed model needs 'routed_to'",
        ),
        ({"models": {"gemini-3.6-flash": []}}, MODEL),
        ({"defaults": {"model": "gemini-2.5-flash"}}, "defaults.model names 'gemini-2.5-flash'"),
        ({"defaults": {"model": "gpt-4o"}}, "defaults.model names 'gpt-4o'"),
        ({"aliases": {"old": "gemini-2.0-flash"}}, "aliases.old names 'gemini-2.0-flash'"),
        (
            {"defaults": {"segment": "gemini-3.5-flash-lite"}},
            "defaults.segment names a model that does not serve segment",
        ),
        ({"text": {"chars_per_token": 0}}, "text.chars_per_token"),
        ({"as_of": "yesterday"}, "as_of"),
        ({"modles": {}}, "unknown top-level keys modles"),
        ({"models": []}, "'models' must be an object"),
        ({"aliases": "x"}, "'aliases' must be an object"),
    ],
)
def test_invalid_override_is_a_clear_error(override: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(override)
    assert "invalid model catalogue (override)" in str(caught.value)
    assert message in str(caught.value)


def test_invalid_whole_catalogue() -> None:
    with pytest.raises(CatalogueError, match="invalid model catalogue \\(catalogue\\)"):
        parse_catalogue({"models": {}})
    with pytest.raises(CatalogueError, match="'defaults' needs a 'model'"):
        parse_catalogue({"as_of": "2026-12-04", "defaults": {}, "models": {}})
    with pytest.raises(CatalogueError, match="expected a JSON object, got list"):
        load_catalogue([])  # type: ignore[arg-type]


def test_defaults_and_close_matches() -> None:
    assert CATALOGUE.default_for(TaskKind.CAPTION) == "gemini-3.5-flash-lite"
    assert CATALOGUE.default_for(TaskKind.DETECT) == "gemini-3.5-flash-lite"
    assert CATALOGUE.default_for(TaskKind.SEGMENT) == "gemini-3.6-flash"
    assert CATALOGUE.close_matches("gemini-3.8-flsh")[0] == "gemini-3.8-flash"
    assert "gemini-flash-latest" in CATALOGUE.close_matches("gemini-flash-lattest")
    # Only ids a job may use are suggested, never a retired one.
    assert "gemini-2.5-flash" not in CATALOGUE.close_matches("gemini-2.5-flsh")
    assert CATALOGUE.close_matches("gpt-4o") == []


def test_budget_and_thinking_rules() -> None:
    budget = BudgetRule(min=128, max=32768, off=False)
    assert [budget.allows(value) for value in (0, -1, 127, 128, 32768, 32769)] == [
        False,
        True,
        False,
        True,
        True,
        False,
    ]
    assert budget.describe() == "128 to 32768, or -1 (dynamic)"
    free = BudgetRule(min=1, max=24576, off=True, dynamic=False)
    assert free.allows(0)
    assert not free.allows(-1)
    assert free.describe() == "1 to 24576, or 0 (off)"
    assert BudgetRule(min=1, max=2, off=True).describe() == "1 to 2, or 0 (off) or -1 (dynamic)"
    with pytest.raises(ValidationError, match="min"):
        BudgetRule(min=0, max=2, off=True)
    eight = CATALOGUE.models["gemini-3.8-flash"].thinking
    assert eight is not None
    assert eight.floor is ThinkingLevel.LOW
    lite = CATALOGUE.models["gemini-3.5-flash-lite"].thinking
    assert lite is not None
    assert lite.floor is ThinkingLevel.MINIMAL
    assert lite.budget is not None
    assert not lite.budget.off  # "only works in thinking mode"
    assert ThinkingRule(budget=budget).floor is None


def test_check_default_model() -> None:
    check_default_model(CATALOGUE, "")  # unset: the catalogue's default
    check_default_model(CATALOGUE, "gemini-3.8-flash")
    check_default_model(CATALOGUE, "gemini-3.6-flash-001")
    with pytest.raises(CatalogueError) as routed:
        check_default_model(CATALOGUE, "gemini-2.5-flash")
    message = str(routed.value)
    assert message.startswith("VISIONQ_DEFAULT_MODEL=gemini-2.5-flash is routed;")
    assert "gemini-3.8-flash" in message  # the usable ids are listed
    assert "unset it for the catalogue's default (gemini-3.5-flash-lite)" in message
    with pytest.raises(CatalogueError, match=r"gemini-2\.0-flash is shut_down"):
        check_default_model(CATALOGUE, "gemini-2.0-flash")
    with pytest.raises(CatalogueError, match="gpt-4o is not in the catalogue"):
        check_default_model(CATALOGUE, "gpt-4o")


def test_model_rows() -> None:
    rows = model_rows(CATALOGUE, DAY)
    assert len(rows) == len(CATALOGUE.models)
    usable = [row.usable for row in rows]
    assert usable == sorted(usable, reverse=True)  # usable models first
    by_id = {row.id: row for row in rows}
    eight = by_id["gemini-3.8-flash"]
    assert (eight.input_usd_per_1m, eight.output_usd_per_1m) == ("0.75", "3.75")
    assert eight.tiers == ["standard", "batch", "flex", "priority"]
    assert eight.thinking_levels == ["LOW", "MEDIUM", "HIGH"]
    assert eight.thinking_budget == "1 to 24576, or -1 (dynamic)"
    assert eight.mask_format == "polygon"
    assert by_id["gemini-3.5-flash-lite"].default_for == ["every task but segment"]
    assert by_id["gemini-3.6-flash"].default_for == ["segment"]
    routed = by_id["gemini-2.5-flash"]
    assert (routed.usable, routed.status, routed.replacement) == (
        False,
        "routed",
        "gemini-3.5-flash-lite",
    )
    assert routed.shutdown_date == dt.date(2026, 12, 1)
    assert routed.input_usd_per_1m is None
    later = {row.id: row for row in model_rows(CATALOGUE, dt.date(2027, 1, 1))}
    assert later["gemini-3.8-flash"].input_usd_per_1m == "1.5"


def test_model_rows_show_the_operators_default() -> None:
    rows = {row.id: row for row in model_rows(CATALOGUE, DAY, "gemini-3.8-flash")}
    # gemini-3.8-flash segments too, so it is every task's default.
    assert rows["gemini-3.8-flash"].default_for == ["every task"]
    assert rows["gemini-3.5-flash-lite"].default_for == []
    lite = {row.id: row for row in model_rows(CATALOGUE, DAY, "gemini-3.1-flash-lite")}
    assert lite["gemini-3.1-flash-lite"].default_for == ["every task but segment"]
    assert lite["gemini-3.6-flash"].default_for == ["segment"]
