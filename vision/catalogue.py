"""The model catalogue: the one list of Gemini models visionq knows, and what each takes.

Pure: the only data read is the packaged, dated table (``vision/data/models.json``, through
importlib.resources); an operator's override comes in as an already-parsed dict (the
caller reads ``VISIONQ_MODELS_FILE``). Gemini changes under us (models are retired,
silently routed to successors, repriced on dates), so every such fact lives in that file,
never in code. Format::

    {"as_of": "2026-12-04", "note": "...", "text": {"chars_per_token": 4},
     "defaults": {"model": "<id>", "segment": "<id>"},
     "aliases": {"gemini-flash-latest": "<id>"},
     "models": {"<id>" | "<id prefix>-*": {
        "status": "stable" | "preview" | "deprecated" | "routed" | "closed" | "shut_down",
        "replacement": "<id>", "routed_to": "<id>", "deprecated_on": "<date>",
        "shutdown_date": "<date>", "shut_down_on": "<date>",
        "prices": [{"from": "<date>", "until": "<date>",
                    "standard": <price>, "batch": <price>, "flex": <price>,
                    "priority": <price>}],
        "image_tokens": <vision.tokens rule>, "per_part_media_resolution": true,
        "thinking": {"levels": ["LOW", ...], "default_level": "MEDIUM",
                     "budget": {"min": 128, "max": 32768, "off": false, "dynamic": true},
                     "max_tokens": 32768},
        "tasks": ["caption", ...], "mask_format": "png" | "seg_tokens" | "polygon",
        "sampling_ignored": ["temperature"], "sampling_refused": [],
        "output_token_limit": 65536, "note": "..."}}}

``<price>`` is a ``vision.pricing.ModelPrice`` (flat ``input``/``output`` or prompt-size
``tiers``). Price periods are inclusive of both dates; a tier a period does not list has
no known price. A model id is found exactly, then without a version suffix
(``gemini-3.6-flash-001``), then by the longest ``-*`` family entry.
"""

from __future__ import annotations

import datetime as dt
import difflib
import enum
import json
import re
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from visionq.vision.levels import ThinkingLevel
from visionq.vision.pricing import ModelPrice
from visionq.vision.task_registry import TASKS, TaskKind
from visionq.vision.tokens import ModelRule, TextRule, text_tokens
from visionq.vision.validation import describe_errors

_PACKAGE_FILE = "models.json"
_VERSION_SUFFIX = re.compile(r"-\d{3}$")
FAMILY_SUFFIX = "*"


class CatalogueError(ValueError):
    """A catalogue (packaged or override) that does not validate."""


class ModelStatus(enum.StrEnum):
    STABLE = "stable"
    PREVIEW = "preview"
    DEPRECATED = "deprecated"
    # Google answers the id with another model, billed at that model's price.
    ROUTED = "routed"
    # Refused to projects that did not use it before.
    CLOSED = "closed"
    SHUT_DOWN = "shut_down"

    @property
    def usable(self) -> bool:
        """Whether a new job may be sent to a model of this status."""
        return self in (ModelStatus.STABLE, ModelStatus.PREVIEW, ModelStatus.DEPRECATED)


class ServiceTier(enum.StrEnum):
    STANDARD = "standard"
    BATCH = "batch"
    FLEX = "flex"
    PRIORITY = "priority"


class MaskFormat(enum.StrEnum):
    """How a model returns segmentation masks."""

    PNG = "png"
    SEG_TOKENS = "seg_tokens"
    POLYGON = "polygon"


class BudgetRule(BaseModel):
    """The thinking_budget values a model takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int = Field(ge=1)
    max: int = Field(ge=1)
    # 0 turns thinking off; models that "only work in thinking mode" refuse it.
    off: bool
    # -1 lets the model choose (dynamic thinking).
    dynamic: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> BudgetRule:
        if self.min > self.max:
            raise ValueError(f"budget min {self.min} is above max {self.max}")
        return self

    def allows(self, budget: int) -> bool:
        if budget == 0:
            return self.off
        if budget == -1:
            return self.dynamic
        return self.min <= budget <= self.max

    def describe(self) -> str:
        extra = [*(["0 (off)"] if self.off else []), *(["-1 (dynamic)"] if self.dynamic else [])]
        return f"{self.min} to {self.max}" + (f", or {' or '.join(extra)}" if extra else "")


class ThinkingRule(BaseModel):
    """How a model thinks: by levels (Gemini 3), by budget, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    levels: tuple[ThinkingLevel, ...] = ()
    default_level: ThinkingLevel | None = None
    budget: BudgetRule | None = None
    # Whether it thinks when the request says nothing (levels imply it does).
    default_on: bool = True
    # The most thinking tokens one answer may use: the estimate's allowance.
    max_tokens: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ThinkingRule:
        if self.default_level is not None and self.default_level not in self.levels:
            raise ValueError(f"default_level {self.default_level} is not in levels")
        if list(self.levels) != sorted(self.levels, key=list(ThinkingLevel).index):
            raise ValueError("levels must be listed lowest first")
        return self

    @property
    def floor(self) -> ThinkingLevel | None:
        """The lowest level the model takes."""
        return self.levels[0] if self.levels else None


class PricePeriod(BaseModel):
    """Prices per service tier, valid from ``from_`` to ``until`` (both inclusive)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: dt.date | None = Field(default=None, alias="from")
    until: dt.date | None = None
    standard: ModelPrice
    batch: ModelPrice | None = None
    flex: ModelPrice | None = None
    priority: ModelPrice | None = None

    def covers(self, day: dt.date) -> bool:
        return (self.from_ is None or self.from_ <= day) and (
            self.until is None or day <= self.until
        )

    def for_tier(self, tier: ServiceTier) -> ModelPrice | None:
        prices: ModelPrice | None = getattr(self, tier.value)
        return prices


class ModelEntry(BaseModel):
    """One model (or a ``-*`` family of retired ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: ModelStatus
    replacement: str | None = None
    routed_to: str | None = None
    deprecated_on: dt.date | None = None
    shutdown_date: dt.date | None = None
    shut_down_on: dt.date | None = None
    prices: tuple[PricePeriod, ...] = ()
    image_tokens: ModelRule | None = None
    per_part_media_resolution: bool = False
    thinking: ThinkingRule | None = None
    tasks: frozenset[TaskKind] = frozenset()
    mask_format: MaskFormat | None = None
    sampling_ignored: frozenset[str] = frozenset()
    sampling_refused: frozenset[str] = frozenset()
    output_token_limit: int | None = Field(default=None, ge=1)
    note: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelEntry:
        if self.status is ModelStatus.ROUTED and not self.routed_to:
            raise ValueError("a routed model needs 'routed_to'")
        if self.status.usable and self.image_tokens is None:
            raise ValueError(f"a {self.status} model needs 'image_tokens'")
        if any(TASKS[task].masks for task in self.tasks) and self.mask_format is None:
            raise ValueError("a model that serves segment needs 'mask_format'")
        return self

    def price(self, day: dt.date, tier: ServiceTier = ServiceTier.STANDARD) -> ModelPrice | None:
        """The price of ``tier`` on ``day``; None when unknown."""
        for period in self.prices:
            if period.covers(day):
                return period.for_tier(tier)
        return None


class Catalogue(BaseModel):
    """The dated catalogue: models by id, aliases and the default models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: dt.date
    note: str | None = None
    text: TextRule = TextRule()
    defaults: dict[str, str]
    aliases: dict[str, str] = {}
    models: dict[str, ModelEntry]

    @model_validator(mode="after")
    def _references(self) -> Catalogue:
        if "model" not in self.defaults:
            raise ValueError("'defaults' needs a 'model'")
        named = {
            **{f"defaults.{key}": value for key, value in self.defaults.items()},
            **{f"aliases.{key}": value for key, value in self.aliases.items()},
        }
        for where, model in named.items():
            entry = self.models.get(model)
            if entry is None or not entry.status.usable:
                usable = ", ".join(key for key, e in self.models.items() if e.status.usable)
                raise ValueError(
                    f"{where} names {model!r}, which is not a usable model here; name one "
                    f"of {usable}"
                )
        if (
            self.defaults.get("segment")
            and TaskKind.SEGMENT not in self.models[self.defaults["segment"]].tasks
        ):
            raise ValueError("defaults.segment names a model that does not serve segment")
        return self

    def lookup(self, model: str) -> tuple[str, ModelEntry] | None:
        """(catalogue id, entry) of ``model``: exact, without a version suffix, or its
        ``-*`` family; None for an id the catalogue does not know. ``models/`` is ignored."""
        name = model.removeprefix("models/")
        for candidate in (name, _VERSION_SUFFIX.sub("", name)):
            if candidate in self.models:
                return candidate, self.models[candidate]
        families = [
            key
            for key in self.models
            if key.endswith(FAMILY_SUFFIX) and name.startswith(key[: -len(FAMILY_SUFFIX)])
        ]
        if not families:
            return None
        best = max(families, key=len)
        return best, self.models[best]

    def entry(self, model: str) -> ModelEntry | None:
        found = self.lookup(model)
        return found[1] if found else None

    def default_for(self, task: TaskKind) -> str:
        """The model a job of ``task`` runs on when it names none."""
        return self.defaults.get(task.value) or self.defaults["model"]

    def close_matches(self, model: str, limit: int = 3) -> list[str]:
        """Usable ids (and aliases) spelled like ``model``, best first."""
        usable = [key for key, entry in self.models.items() if entry.status.usable]
        return difflib.get_close_matches(model, [*usable, *self.aliases], n=limit, cutoff=0.6)

    def usable(self) -> list[str]:
        """The ids a new job may use, in catalogue order."""
        return [key for key, entry in self.models.items() if entry.status.usable]

    def text_tokens(self, text: str) -> int:
        """Text tokens by the catalogue's characters-per-token ratio."""
        return text_tokens(text, chars_per_token=self.text.chars_per_token)


def parse_catalogue(data: Any, *, source: str = "catalogue") -> Catalogue:
    """Validate a whole catalogue (a parsed JSON object); raises CatalogueError."""
    try:
        return Catalogue.model_validate(data)
    except ValidationError as error:
        raise CatalogueError(describe_errors(error, "model catalogue", source)) from error


def default_catalogue_data() -> dict[str, Any]:
    """The packaged catalogue as parsed JSON (a fresh copy)."""
    text = resources.files("visionq.vision").joinpath("data", _PACKAGE_FILE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


_TOP_LEVEL = frozenset({"as_of", "note", "text", "defaults", "aliases", "models"})


def load_catalogue(override: dict[str, Any] | None = None) -> Catalogue:
    """The packaged catalogue with ``override`` (same format, every key optional) applied.

    A ``models`` entry for a packaged id is merged into it key by key (so
    ``{"models": {"gemini-3.6-flash": {"image_tokens": {...}}}}`` corrects one rule and
    keeps the rest); an entry for a new id adds a model and needs every field its status
    requires. ``aliases`` and ``defaults`` entries replace or add per key; ``as_of``,
    ``note`` and ``text`` replace the packaged ones when given. Raises CatalogueError
    naming what is wrong.
    """
    data = default_catalogue_data()
    if override is None:
        return parse_catalogue(data, source="packaged defaults")
    if not isinstance(override, dict):
        raise CatalogueError(
            f"invalid model catalogue (override): expected a JSON object, got "
            f"{type(override).__name__}"
        )
    unknown = sorted(set(override) - _TOP_LEVEL)
    if unknown:
        raise CatalogueError(
            "invalid model catalogue (override): unknown top-level keys "
            f"{', '.join(unknown)} (allowed: {', '.join(sorted(_TOP_LEVEL))})"
        )
    merged = dict(data)
    for key in ("models", "aliases", "defaults"):
        extra = override.get(key, {})
        if not isinstance(extra, dict):
            raise CatalogueError(f"invalid model catalogue (override): {key!r} must be an object")
        merged[key] = {**data.get(key, {}), **extra}
    packaged = data["models"]
    for model, entry in override.get("models", {}).items():
        if model in packaged and isinstance(entry, dict):
            merged["models"][model] = {**packaged[model], **entry}
    for key in ("as_of", "note", "text"):
        if key in override:
            merged[key] = override[key]
    return parse_catalogue(merged, source="override")


def check_default_model(catalogue: Catalogue, configured: str) -> None:
    """Refuse to start with a VISIONQ_DEFAULT_MODEL no job could run on."""
    if not configured:
        return
    entry = catalogue.entry(configured)
    if entry is None or not entry.status.usable:
        status = f"is {entry.status}" if entry is not None else "is not in the catalogue"
        raise CatalogueError(
            f"VISIONQ_DEFAULT_MODEL={configured} {status}; set it to one of "
            f"{', '.join(catalogue.usable())}, or unset it for the catalogue's default "
            f"({catalogue.defaults['model']})."
        )
