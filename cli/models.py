"""`visionq models`: the model catalogue as this installation sees it."""

from __future__ import annotations

import json

from rich import box
from rich.console import Console
from rich.table import Table

from visionq.models.settings import Settings
from visionq.vision.costing import CostBook, today
from visionq.vision.model_rows import model_rows
from visionq.vision.tasks import TaskKind

ALL_TASKS = frozenset(task.value for task in TaskKind)


def show_models(settings: Settings, *, as_json: bool, include_retired: bool) -> None:
    """Print the catalogue (packaged, with VISIONQ_MODELS_FILE applied)."""
    catalogue = CostBook.load(settings.catalogue_override()).catalogue
    rows = model_rows(catalogue, today(), settings.default_model or None)
    rows = [row for row in rows if include_retired or row.usable]
    if as_json:
        print(json.dumps([row.model_dump(mode="json") for row in rows], indent=2))
        return
    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        title=f"Gemini models (catalogue of {catalogue.as_of.isoformat()})",
    )
    table.add_column("model", no_wrap=True)
    for column in ("status", "USD/1M in/out", "thinking", "tasks"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = row.status
        if row.default_for:
            status += f", default for {' and '.join(row.default_for)}"
        if row.usable and row.shutdown_date:
            status += f", shuts down {row.shutdown_date.isoformat()}"
        if row.routed_to or (not row.usable and row.replacement):
            status += f" -> {row.routed_to or row.replacement}"
        price = f"{row.input_usd_per_1m} / {row.output_usd_per_1m}" if row.input_usd_per_1m else "-"
        thinking = ", ".join(row.thinking_levels) or (row.thinking_budget or "-")
        if row.thinking_default:
            thinking += f" (default {row.thinking_default})"
        missing = sorted(ALL_TASKS - set(row.tasks))
        tasks = "all" if not missing else f"all but {', '.join(missing)}" if row.tasks else "-"
        table.add_row(row.id, status, price, thinking, tasks)
    console = Console()
    console.print(table)
    if catalogue.aliases:
        pins = ", ".join(f"{alias} -> {model}" for alias, model in catalogue.aliases.items())
        console.print(f"aliases (pinned per job): {pins}", highlight=False)
    more = "" if include_retired else "retired models: --all; "
    console.print(f"{more}sources and caveats per model: --json", highlight=False)
