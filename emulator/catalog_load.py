"""Reading the model catalogue: the built-in file, override files, merging and checks.

The built-in catalogue is ``emulator/data/models.json``. An override file has the same
format. Its ``models`` entries are merged into the built-in ones key by key
(``{"gemini-3.8-flash": {"billing": {...}}}`` replaces only that model's billing); a new id
needs a whole entry. ``aliases`` are merged per name; ``version``, ``text``,
``thoughts_tokens`` and ``service_tier_price_factor`` replace the built-in ones when
present. The merged catalogue is checked whole; errors name the JSON path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final

from visionq.emulator.catalog import (
    DEFAULT_INPUT_LIMIT,
    DEFAULT_OUTPUT_LIMIT,
    MASK_FORMATS,
    SERVED_STATUSES,
    SERVICE_TIERS,
    STATUSES,
    THINKING_LEVELS,
    Catalogue,
    CatalogueError,
    ModelSpec,
    Price,
    ThinkingRules,
)
from visionq.emulator.tokens import TokenRulesError, parse_chars_per_token
from visionq.emulator.tokens import parse_model_rule as parse_billing

BUILTIN_FILE: Final = "data/models.json"


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CatalogueError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _int(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CatalogueError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _str(value: Any, where: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or not value:
        raise CatalogueError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _bool(value: Any, where: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise CatalogueError(f"{where}: expected true or false, got {value!r}")
    return value


def _thinking(value: Any, where: str) -> ThinkingRules:
    data = _object(value, where)
    levels = data.get("levels", [])
    if not isinstance(levels, list) or any(level not in THINKING_LEVELS for level in levels):
        raise CatalogueError(
            f"{where}.levels: expected a list of {', '.join(THINKING_LEVELS)}, got {levels!r}"
        )
    default_level = data.get("default_level")
    if default_level is not None and default_level not in levels:
        raise CatalogueError(f"{where}.default_level: not one of levels, got {default_level!r}")
    default_on = _bool(data.get("default_on"), f"{where}.default_on", True)
    if default_on and default_level is None:
        raise CatalogueError(f"{where}.default_level: required when default_on is true")
    low = _int(data.get("budget_min"), f"{where}.budget_min", 1)
    high = _int(data.get("budget_max"), f"{where}.budget_max", low)
    return ThinkingRules(
        default_on=default_on,
        levels=tuple(levels),
        default_level=default_level,
        budget_min=low,
        budget_max=high,
        budget_zero=_bool(data.get("budget_zero"), f"{where}.budget_zero", False),
    )


def _usd(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise CatalogueError(f"{where}: expected a number of USD >= 0, got {value!r}")
    return float(value)


def _prices(value: Any, where: str) -> tuple[Price, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CatalogueError(f"{where}: expected a list of prices, got {value!r}")
    prices: list[Price] = []
    for index, entry in enumerate(value):
        item = _object(entry, f"{where}[{index}]")
        valid_from = item.get("from")
        prices.append(
            Price(
                input=_usd(item.get("input"), f"{where}[{index}].input"),
                output=_usd(item.get("output"), f"{where}[{index}].output"),
                valid_from=None
                if valid_from is None
                else _str(valid_from, f"{where}[{index}].from"),
            )
        )
    return tuple(prices)


def _factors(value: Any, where: str) -> dict[str, float]:
    data = _object(value, where)
    return {tier: _usd(data.get(tier), f"{where}.{tier}") for tier in SERVICE_TIERS}


def _optional_date(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    return None if value is None else _str(value, f"{where}.{key}")


def _model(model_id: str, entry: Any, where: str) -> ModelSpec:
    data = _object(entry, where)
    status = data.get("status")
    if status not in STATUSES:
        raise CatalogueError(
            f"{where}.status: expected one of {', '.join(STATUSES)}, got {status!r}"
        )
    successor = data.get("successor")
    if status == "routed":
        successor = _str(successor, f"{where}.successor")
    elif successor is not None:
        raise CatalogueError(f"{where}.successor: only a routed model has one")
    deprecation_date = _optional_date(data, "deprecation_date", where)
    shutdown_date = _optional_date(data, "shutdown_date", where)
    if status in ("routed", "shut_down"):
        return ModelSpec(
            id=model_id,
            status=status,
            successor=successor,
            deprecation_date=deprecation_date,
            shutdown_date=shutdown_date,
        )
    try:
        billing = parse_billing(data.get("billing"), f"{where}.billing")
    except TokenRulesError as exc:
        raise CatalogueError(str(exc)) from exc
    mask_format = data.get("mask_format", "png")
    if mask_format not in MASK_FORMATS:
        raise CatalogueError(
            f"{where}.mask_format: expected one of {', '.join(MASK_FORMATS)}, got {mask_format!r}"
        )
    thinking = data.get("thinking")
    return ModelSpec(
        id=model_id,
        status=status,
        display_name=_str(data.get("display_name"), f"{where}.display_name", model_id),
        version=_str(data.get("version"), f"{where}.version", "001"),
        input_token_limit=_int(
            data.get("input_token_limit", DEFAULT_INPUT_LIMIT), f"{where}.input_token_limit", 1
        ),
        output_token_limit=_int(
            data.get("output_token_limit", DEFAULT_OUTPUT_LIMIT), f"{where}.output_token_limit", 1
        ),
        billing=billing,
        per_part_media_resolution=_bool(
            data.get("per_part_media_resolution"), f"{where}.per_part_media_resolution", False
        ),
        thinking=None if thinking is None else _thinking(thinking, f"{where}.thinking"),
        mask_format=mask_format,
        deprecation_date=deprecation_date,
        shutdown_date=shutdown_date,
        prices=_prices(data.get("prices"), f"{where}.prices"),
    )


def _thoughts(value: Any, where: str) -> tuple[dict[str, int], int]:
    data = _object(value, where)
    by_level = {level: _int(data.get(level), f"{where}.{level}", 1) for level in THINKING_LEVELS}
    return by_level, _int(data.get("budget_cap"), f"{where}.budget_cap", 1)


def _check_links(models: Mapping[str, ModelSpec], aliases: Mapping[str, str]) -> None:
    for spec in models.values():
        if spec.successor is not None:
            target = models.get(spec.successor)
            if target is None or target.status not in SERVED_STATUSES:
                raise CatalogueError(
                    f"$.models[{spec.id!r}].successor: {spec.successor!r} is not a served model"
                )
    for alias, target_id in aliases.items():
        target = models.get(target_id)
        if alias in models:
            raise CatalogueError(f"$.aliases[{alias!r}]: also a model id")
        if target is None or target.status not in SERVED_STATUSES:
            raise CatalogueError(f"$.aliases[{alias!r}]: {target_id!r} is not a served model")


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """The raw catalogue ``base`` with an override file's content applied (see the module)."""
    merged = dict(base)
    for key in ("version", "source", "text", "thoughts_tokens", "service_tier_price_factor"):
        if key in override:
            merged[key] = override[key]
    aliases = dict(_object(base.get("aliases", {}), "$.aliases"))
    aliases.update(_object(override.get("aliases", {}), "$.aliases"))
    merged["aliases"] = aliases
    models = {k: dict(_object(v, f"$.models[{k!r}]")) for k, v in base["models"].items()}
    for model_id, entry in _object(override.get("models", {}), "$.models").items():
        models[model_id] = {**models.get(model_id, {}), **_object(entry, f"$.models[{model_id!r}]")}
    merged["models"] = models
    return merged


def parse_catalogue(data: Any, where: str = "model catalogue") -> Catalogue:
    """Validate a whole raw catalogue; errors read ``"{where}: $.models['x'].status: ..."``."""
    try:
        top = _object(data, "$")
        try:
            chars_per_token = parse_chars_per_token(top.get("text"), "$.text")
        except TokenRulesError as exc:
            raise CatalogueError(str(exc)) from exc
        by_level, cap = _thoughts(top.get("thoughts_tokens"), "$.thoughts_tokens")
        models = {
            model_id: _model(model_id, entry, f"$.models[{model_id!r}]")
            for model_id, entry in _object(top.get("models"), "$.models").items()
        }
        aliases_raw = _object(top.get("aliases", {}), "$.aliases")
        aliases = {k: _str(v, f"$.aliases[{k!r}]") for k, v in aliases_raw.items()}
        _check_links(models, aliases)
        return Catalogue(
            version=_str(top.get("version"), "$.version"),
            chars_per_token=chars_per_token,
            tier_price_factor=_factors(
                top.get("service_tier_price_factor"), "$.service_tier_price_factor"
            ),
            thoughts_by_level=by_level,
            thoughts_budget_cap=cap,
            aliases=aliases,
            models=models,
        )
    except CatalogueError as exc:
        raise CatalogueError(f"{where}: {exc}") from exc


def builtin_raw() -> dict[str, Any]:
    """The built-in catalogue as parsed JSON (``emulator/data/models.json``)."""
    text = resources.files("visionq.emulator").joinpath(BUILTIN_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def build_catalogue(override: Mapping[str, Any] | None = None, where: str = "models") -> Catalogue:
    """The built-in catalogue, with ``override`` (an override file's JSON) merged in."""
    raw = builtin_raw()
    if override is None:
        return parse_catalogue(raw, "built-in model catalogue")
    try:
        merged = merge(raw, _object(override, "$"))
    except CatalogueError as exc:
        raise CatalogueError(f"{where}: {exc}") from exc
    return parse_catalogue(merged, where)


def load_models_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate an override file; returns its JSON for ``EmulatorConfig.models``.

    Raises ``CatalogueError`` naming the file and the problem (unreadable, not JSON, or
    not a valid catalogue once merged).
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            raw = handle.read()
    except OSError as exc:
        raise CatalogueError(f"cannot read models file {name}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"models file {name}: not UTF-8 text") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CatalogueError(
            f"models file {name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    build_catalogue(data, where=f"models file {name}")
    return dict(_object(data, f"models file {name}"))
