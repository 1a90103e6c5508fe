"""The catalogue as rows to show: one per model id, what a user picks a model by."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from vision.catalogue import Catalogue, ModelEntry, ServiceTier
from vision.pricing import format_usd


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
        description="Where it is the default: 'every task' (unless a task has its own), or "
        "a task's name."
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


def _row(catalogue: Catalogue, model: str, entry: ModelEntry, day: dt.date) -> ModelRow:
    price = entry.price(day)
    first = price.all_tiers()[0] if price is not None else None
    thinking = entry.thinking
    defaults = [task for task, name in sorted(catalogue.defaults.items()) if name == model]
    return ModelRow(
        id=model,
        status=entry.status.value,
        usable=entry.status.usable,
        replacement=entry.replacement,
        routed_to=entry.routed_to,
        shutdown_date=entry.shutdown_date or entry.shut_down_on,
        default_for=["every task" if task == "model" else task for task in defaults],
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


def model_rows(catalogue: Catalogue, day: dt.date) -> list[ModelRow]:
    """Every catalogue entry, usable models first, with the prices in force on ``day``."""
    rows = [_row(catalogue, model, entry, day) for model, entry in catalogue.models.items()]
    return sorted(rows, key=lambda row: not row.usable)
