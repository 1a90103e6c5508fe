"""The catalogue as rows to show: one per model id, what a user picks a model by."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from visionq.vision.catalogue import Catalogue, ModelEntry, ServiceTier
from visionq.vision.model_fit import choose_model
from visionq.vision.pricing import format_usd
from visionq.vision.tasks import TaskKind


class ModelRow(BaseModel):
    """One catalogue entry as GET /v1/models and `visionq models` show it."""

    id: str
    status: str = Field(
        description="stable, preview, deprecated, routed (Google answers with another "
        "model), closed (to new projects) or shut_down."
    )
    usable: bool = Field(description="Whether a new job may name it.")
    replacement: str | None
    routed_to: str | None
    shutdown_date: dt.date | None = Field(description="Announced (earliest) shutdown date.")
    default_for: list[str] = Field(
        description="Where jobs naming no model get it: 'every task', or the tasks' names "
        "(VISIONQ_DEFAULT_MODEL applied)."
    )
    tasks: list[str]
    mask_format: str | None
    input_usd_per_1m: str | None = Field(description="Standard tier, today, short prompts.")
    output_usd_per_1m: str | None
    tiers: list[str] = Field(description="Service tiers with a known price today.")
    thinking_levels: list[str]
    thinking_default: str | None
    thinking_budget: str | None = Field(description="Accepted thinking_budget values.")
    note: str | None


def _defaults(catalogue: Catalogue, configured: str | None) -> dict[str, list[str]]:
    """Model -> where it is the default ('every task', 'every task but segment', or the
    tasks' names), as jobs
    naming no model are given one (vision.model_fit.choose_model)."""
    by_model: dict[str, list[str]] = {}
    for task in TaskKind:
        model = choose_model(catalogue, None, task, configured_default=configured).model
        by_model.setdefault(model, []).append(task.value)
    return {model: _where(tasks) for model, tasks in by_model.items()}


def _where(tasks: list[str]) -> list[str]:
    missing = [task.value for task in TaskKind if task.value not in tasks]
    if not missing:
        return ["every task"]
    if len(missing) < len(tasks):
        return [f"every task but {', '.join(missing)}"]
    return tasks


def _row(model: str, entry: ModelEntry, day: dt.date, defaults: dict[str, list[str]]) -> ModelRow:
    price = entry.price(day)
    first = price.all_tiers()[0] if price is not None else None
    thinking = entry.thinking
    return ModelRow(
        id=model,
        status=entry.status.value,
        usable=entry.status.usable,
        replacement=entry.replacement,
        routed_to=entry.routed_to,
        shutdown_date=entry.shutdown_date or entry.shut_down_on,
        default_for=defaults.get(model, []),
        tasks=sorted(task.value for task in entry.tasks),
        mask_format=entry.mask_format.value if entry.mask_format else None,
        input_usd_per_1m=format_usd(first.input) if first else None,
        output_usd_per_1m=format_usd(first.output) if first else None,
        tiers=[tier.value for tier in ServiceTier if entry.price(day, tier) is not None],
        thinking_levels=[level.value for level in thinking.levels] if thinking else [],
        thinking_default=(
            thinking.default_level.value if thinking and thinking.default_level else None
        ),
        thinking_budget=thinking.budget.describe() if thinking and thinking.budget else None,
        note=entry.note,
    )


def model_rows(
    catalogue: Catalogue, day: dt.date, configured_default: str | None = None
) -> list[ModelRow]:
    """Every catalogue entry, usable models first, with the prices in force on ``day`` and
    the defaults jobs get (``configured_default``: VISIONQ_DEFAULT_MODEL, if set)."""
    defaults = _defaults(catalogue, configured_default)
    rows = [_row(model, entry, day, defaults) for model, entry in catalogue.models.items()]
    return sorted(rows, key=lambda row: not row.usable)
