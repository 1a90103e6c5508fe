"""The emulator's own model catalogue: which ids exist, their status, rules and billing.

It is read from ``emulator/data/models.json`` (the emulator's own reading of Google's
pages, kept apart from visionq's data on purpose: the emulator is an independent witness)
and may be overridden by a file (``--models-file`` / ``EmulatorConfig.model_catalogue``);
reading, merging and checking them is catalog_load.py's work.

Statuses: ``stable``, ``preview`` and ``deprecated`` are served; ``routed`` ids are
answered by their ``successor`` (its rules, its billing, ``modelVersion`` names it);
``closed`` ids answer 404 "no longer available to new users" (unless the emulator plays an
existing project); ``shut_down`` ids answer the unknown-model 404. ``aliases`` map a name
such as ``gemini-flash-latest`` to the served model that answers it.

An override file has the same format. Its ``models`` entries are merged into the built-in
ones key by key (``{"gemini-3.8-flash": {"billing": {...}}}`` replaces only that model's
billing); a new id needs a whole entry. ``aliases`` are merged per name; ``version``,
``text`` and ``thoughts_tokens`` replace the built-in ones when present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from visionq.emulator import errors
from visionq.emulator.tokens import ModelRule, TokenTable

STATUSES: Final = ("stable", "preview", "deprecated", "routed", "closed", "shut_down")
SERVED_STATUSES: Final = frozenset({"stable", "preview", "deprecated"})
MASK_FORMATS: Final = ("png", "seg_tokens", "polygon")
THINKING_LEVELS: Final = ("MINIMAL", "LOW", "MEDIUM", "HIGH")
# Tiers a price factor is given for; "batch" is the Batch API's (never a serviceTier value).
SERVICE_TIERS: Final = ("standard", "flex", "priority", "batch")
DEFAULT_INPUT_LIMIT: Final = 1_048_576
DEFAULT_OUTPUT_LIMIT: Final = 65_536


class CatalogueError(ValueError):
    """The catalogue (or an override file) is not valid; the message says where and why."""


@dataclass(frozen=True)
class ThinkingRules:
    """How one model thinks: on by default or not, the levels it takes, its budget range."""

    default_on: bool
    levels: tuple[str, ...]
    default_level: str | None
    budget_min: int
    budget_max: int
    budget_zero: bool


@dataclass(frozen=True)
class Price:
    """Standard-tier USD per 1M tokens from ``valid_from`` (ISO date; None = always)."""

    input: float
    output: float
    valid_from: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry (``billing`` and ``thinking`` only for models that can answer)."""

    id: str
    status: str
    successor: str | None = None
    display_name: str = ""
    version: str = "001"
    input_token_limit: int = DEFAULT_INPUT_LIMIT
    output_token_limit: int = DEFAULT_OUTPUT_LIMIT
    billing: ModelRule | None = None
    per_part_media_resolution: bool = False
    thinking: ThinkingRules | None = None
    mask_format: str = "png"
    deprecation_date: str | None = None
    shutdown_date: str | None = None
    prices: tuple[Price, ...] = ()

    @property
    def answers(self) -> bool:
        """True if this model can answer a call itself (served, or closed to new users)."""
        return self.billing is not None

    def price_on(self, day: str) -> Price | None:
        """The price in force on ``day`` (ISO date): the last one valid from it or before."""
        valid = [p for p in self.prices if p.valid_from is None or p.valid_from <= day]
        return valid[-1] if valid else None


@dataclass(frozen=True)
class Catalogue:
    """The parsed, validated catalogue."""

    version: str
    chars_per_token: float
    tier_price_factor: Mapping[str, float]
    thoughts_by_level: Mapping[str, int]
    thoughts_budget_cap: int
    aliases: Mapping[str, str]
    models: Mapping[str, ModelSpec]

    def resolve(
        self, requested: str, api_version: str, method: str, existing_project: bool = False
    ) -> ModelSpec:
        """The model that answers a call to ``models/{requested}``, or the API's 404.

        Aliases and routed ids give the model they point at; closed ids answer only for an
        existing project; shut-down and unknown ids answer the unknown-model 404.
        """
        name = self.aliases.get(requested, requested)
        spec = self.models.get(name)
        if spec is None or spec.status == "shut_down":
            raise errors.model_not_found(requested, api_version, method)
        if spec.status == "routed":
            assert spec.successor is not None
            return self.models[spec.successor]
        if spec.status == "closed" and not existing_project:
            raise errors.model_closed(requested)
        return spec

    def listed(self, existing_project: bool = False) -> list[tuple[str, ModelSpec]]:
        """(name, answering model) for models.list: served ids, routed ids, aliases.

        Shut-down ids are left out, and closed ones unless the emulator plays an existing
        project.
        """
        shown: list[tuple[str, ModelSpec]] = []
        for model_id, spec in self.models.items():
            if spec.status == "shut_down" or (spec.status == "closed" and not existing_project):
                continue
            served = self.models[spec.successor] if spec.successor else spec
            shown.append((model_id, served))
        shown.extend((alias, self.models[target]) for alias, target in self.aliases.items())
        return shown

    def token_table(self, flat_image_tokens: int | None = None) -> TokenTable:
        """The billing rules of every model that can answer, keyed by exact id."""
        rules = {m.id: m.billing for m in self.models.values() if m.billing is not None}
        return TokenTable(self.version, self.chars_per_token, rules, flat_image_tokens)
