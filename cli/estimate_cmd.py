"""`visionq estimate`: tokens and USD of jobs before they run, per job and in total."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from visionq.cli.common import JsonOption, KeyOption, UrlOption, client_for, die, print_json
from visionq.cli.inputs import (
    InputError,
    check_images,
    group_name,
    job_groups,
    label_list,
    name_files,
    read_schema,
)
from visionq.cli.options import (
    DeadlineOption,
    Economy,
    Labels,
    MaxOutputTokens,
    MaxSide,
    Model,
    OptionArgs,
    SchemaFile,
    Thinking,
    TierOption,
    job_options,
)
from visionq.client import DEFAULT_URL, VisionqError
from visionq.vision.formats import ACCEPTED_FORMATS_TEXT
from visionq.vision.tasks import TaskKind


def _usd(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


def estimate_line(name: str, item: dict[str, Any]) -> str:
    """One job's estimate in words: input tokens, the output cap, USD from input only to
    input plus the whole output cap; "no price" (and why) when the model has none."""
    if not item.get("known"):
        return f"{name}: no estimate: {item.get('reason')}"
    sizes = " ".join(f"{i['width']}x{i['height']}={i['tokens']}" for i in item["images"])
    line = (
        f"{name}: {item['model']}: input {item['input_tokens']} tokens (images {sizes}), "
        f"output up to {item['output_tokens_max']} tokens"
    )
    cost = item.get("cost_usd") or {}
    low, high = _usd(cost.get("min")), _usd(cost.get("max"))
    if low is None or high is None:
        return f"{line}; no price ({item.get('reason') or 'the catalogue has none'})"
    line = f"{line}; USD {low} (no output) - {high} (output up to the cap)"
    return f"{line} at tier {item['tier']}" if item.get("tier") else line


def tier_reason(item: dict[str, Any]) -> str | None:
    """Why tier auto chose the estimate's tier (the API's assumption "tier auto → ..."), or
    None when the tier was asked for."""
    for assumption in item.get("assumptions") or []:
        if isinstance(assumption, str) and assumption.startswith("tier auto"):
            return assumption
    return None


def total_line(items: list[dict[str, Any]]) -> str:
    """The sum of every priced job's min and max, and how many jobs had no price."""
    low = high = Decimal(0)
    priced = 0
    for item in items:
        cost = item.get("cost_usd") or {}
        item_low, item_high = _usd(cost.get("min")), _usd(cost.get("max"))
        if item.get("known") and item_low is not None and item_high is not None:
            low, high, priced = low + item_low, high + item_high, priced + 1
    line = f"total: {len(items)} job(s): USD {low} - {high}"
    if priced < len(items):
        line += f" ({len(items) - priced} without a price, not counted)"
    return line


def estimate(
    images: Annotated[
        list[Path],
        typer.Argument(help=f"Image files ({ACCEPTED_FORMATS_TEXT}).", show_default=False),
    ],
    task: Annotated[TaskKind, typer.Option("--task", "-t", help="The task to estimate.")],
    prompt: Annotated[str | None, typer.Option(help="The prompt, if the task takes one.")] = None,
    labels: Labels = None,
    model: Model = None,
    schema: SchemaFile = None,
    option: OptionArgs = None,
    max_output_tokens: MaxOutputTokens = None,
    thinking: Thinking = None,
    max_side: MaxSide = None,
    economy: Economy = False,
    tier: TierOption = None,
    deadline: DeadlineOption = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Estimate tokens and USD for IMAGE...; nothing runs.

    One job per image (or one for all where the task takes several), like submit.

    Per job: the input tokens, the output cap (the answer and thinking
    together), and USD from the input alone (min) to the input plus the whole
    output cap (max), at the price of the job's tier. With --tier auto, a
    second line says which tier auto chose and why (turnaround against the
    deadline). Over several jobs, a total line sums them.
    """
    options = job_options(
        option, max_output_tokens=max_output_tokens, thinking=thinking, max_side=max_side,
        economy=economy, tier=tier, deadline=deadline,
    )  # fmt: skip
    try:
        check_images(images)
        schema_value = read_schema(schema) if schema else None
    except InputError as exc:
        die(str(exc))
    groups = job_groups(images, task)
    labels_sent = label_list(labels)
    with client_for(url, api_key) as client:
        found = []
        for group in groups:
            try:
                found.append(
                    client.estimate(
                        group,
                        task=task.value,
                        prompt=prompt,
                        labels=labels_sent,
                        model=model,
                        options=options or None,
                        schema=schema_value,
                    )
                )
            except VisionqError as exc:
                die(name_files(str(exc), group))
    if as_json:
        print_json(found)
        return
    console = Console()
    for group, item in zip(groups, found, strict=True):
        console.print(estimate_line(group_name(group), item), markup=False, highlight=False)
        reason = tier_reason(item)
        if reason is not None:
            console.print(f"  {reason}", markup=False, highlight=False)
    if len(found) > 1:
        console.print(total_line(found), markup=False, highlight=False)
