"""What a job will cost before it runs, and what the economy option would save.

Pure: token rules and prices are passed in (``vision.tokens.load_token_rules``,
``vision.pricing.load_prices``). Image sizes are the sizes the model will receive, i.e.
after any ``max_side`` downscale; the prompt text is the text part actually sent
(``vision.tasks.build_prompt``).

``Estimate.model_dump(mode="json")`` is::

    {"model": "gemini-2.5-flash",
     "images": [{"width": 1000, "height": 800, "tokens": 1032}],
     "text_tokens": 15, "input_tokens": 1047, "output_tokens_max": 32768,
     "cost_usd": {"min": "0.0003141", "max": "0.0822341"},
     "rule": "gemini-2.5", "prices_as_of": "2026-11-01", "known": true,
     "assumptions": ["..."], "reason": null}

Costs are decimal strings (fixed-point, at most 10 decimals, no trailing zeros) so no
precision is lost to floats; ``Estimate.cost_usd.min``/``max`` are exact ``Decimal`` in
Python. ``known`` is false when no token rule matches the model: then every token and cost
field is null and ``reason`` says what to add, never a guess. With a token rule but no
price, tokens are given, ``cost_usd`` is null and ``reason`` says the price is missing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer

from vision.pricing import PriceTable, cost, format_usd
from vision.tasks import JobOptions, TaskKind, generation_config
from vision.tokens import (
    ModelRule,
    TokenRules,
    cheapest_max_side,
    cheapest_size,
    image_tokens,
    normalise_level,
)

DEFAULT_MAX_OUTPUT = 8192

# Thinking when the request sets no budget, by model-name prefix (longest wins):
# (thinks by default, the most a dynamic budget may use). The maxima are the top of each
# model's documented thinking_budget range; Gemini 3's is an assumption (it thinks by
# default with thinking levels, not budgets). Models not listed do not think.
THINKING_DEFAULTS: dict[str, tuple[bool, int]] = {
    "gemini-2.5-pro": (True, 32_768),
    "gemini-2.5-flash": (True, 24_576),
    "gemini-2.5-flash-lite": (False, 24_576),
    "gemini-3": (True, 32_768),
}

# Tasks whose answer survives a smaller image; detect/segment need the resolution, and
# compare/custom are left alone (their needs are not known).
ECONOMY_TASKS = frozenset({TaskKind.CAPTION, TaskKind.CLASSIFY, TaskKind.ASK})

UsdDecimal = Annotated[Decimal, PlainSerializer(format_usd, return_type=str, when_used="json")]


class ImageEstimate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int
    height: int
    tokens: int | None


class CostRange(BaseModel):
    """USD: ``min`` = input only (no output), ``max`` = input + the full output bound."""

    model_config = ConfigDict(extra="forbid")

    min: UsdDecimal
    max: UsdDecimal


class Estimate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    images: list[ImageEstimate]
    text_tokens: int | None
    input_tokens: int | None
    output_tokens_max: int | None
    cost_usd: CostRange | None
    rule: str | None
    prices_as_of: dt.date | None
    known: bool
    assumptions: list[str] = []
    reason: str | None = None

    @classmethod
    def unknown(cls, model: str, reason: str, images: Sequence[tuple[int, int]] = ()) -> Estimate:
        """No estimate: ``known`` false, tokens and costs null, and why."""
        return cls(
            model=model,
            images=[ImageEstimate(width=w, height=h, tokens=None) for w, h in images],
            text_tokens=None,
            input_tokens=None,
            output_tokens_max=None,
            cost_usd=None,
            rule=None,
            prices_as_of=None,
            known=False,
            reason=reason,
        )


def no_rule_reason(model: str) -> str:
    return f"no token rule for model {model}; add it to the token rules file"


def _longest_prefix(model: str, table: dict[str, Any]) -> str | None:
    name = model.removeprefix("models/")
    matches = [prefix for prefix in table if name.startswith(prefix)]
    return max(matches, key=len) if matches else None


def _thinking_allowance(
    model: str, task: TaskKind, thinking_budget: int | None
) -> tuple[int, list[str]]:
    """Output tokens thinking may add, and the assumptions made to say so."""
    # The worker's own defaults (e.g. budget 0 for detect/segment on flash models).
    config = generation_config(task, model, JobOptions(thinking_budget=thinking_budget))
    budget: int | None = config.get("thinking_config", {}).get("thinking_budget")
    if budget is not None and budget >= 0:
        return budget, []
    prefix = _longest_prefix(model, THINKING_DEFAULTS)
    thinks, maximum = THINKING_DEFAULTS[prefix] if prefix else (False, 0)
    if budget == -1:
        if prefix is None:
            return 0, [f"thinking_budget -1 (dynamic) on {model}: assumed to add no tokens"]
        return maximum, [
            f"dynamic thinking (thinking_budget -1) counted at its maximum, {maximum} tokens"
        ]
    if thinks:
        return maximum, [
            f"no thinking_budget given: {model} thinks by default (dynamic); "
            f"counted at the maximum budget, {maximum} tokens"
        ]
    return 0, []


def _image_levels(
    count: int, media_resolution: str | None, per_image: Sequence[str | None] | None
) -> list[str | None]:
    job_level = normalise_level(media_resolution)
    if job_level == "ULTRA_HIGH":
        raise ValueError("media_resolution ULTRA_HIGH can only be set per image, not per request")
    if per_image is None:
        return [job_level] * count
    if len(per_image) != count:
        raise ValueError(f"{len(per_image)} per-image media resolutions for {count} images")
    return [normalise_level(level) or job_level for level in per_image]


def estimate_job(
    *,
    model: str,
    task: TaskKind,
    prompt_text: str,
    images: list[tuple[int, int]],
    max_output_tokens: int | None,
    thinking_budget: int | None,
    media_resolution: str | None,
    rules: TokenRules,
    prices: PriceTable,
    default_max_output: int = DEFAULT_MAX_OUTPUT,
    image_media_resolution: Sequence[str | None] | None = None,
    batch: bool = False,
) -> Estimate:
    """The token and cost estimate of one job (see the module docstring for the format).

    ``images`` are (width, height) as sent; ``media_resolution`` is the request's level,
    ``image_media_resolution`` optional per-image levels (Gemini 3 parts) overriding it.
    output_tokens_max = (max_output_tokens or default_max_output) + the thinking allowance
    (the budget when > 0; the model's maximum when it thinks dynamically). Raises
    ValueError for an unknown media_resolution or a non-positive image size.
    """
    found = rules.match(model)
    if found is None:
        return Estimate.unknown(model, no_rule_reason(model), images)
    prefix, rule = found
    levels = _image_levels(len(images), media_resolution, image_media_resolution)
    image_estimates = [
        ImageEstimate(width=w, height=h, tokens=image_tokens(rule, w, h, level))
        for (w, h), level in zip(images, levels, strict=True)
    ]
    text = rules.text_tokens(prompt_text)
    input_tokens = text + sum(image.tokens or 0 for image in image_estimates)

    assumptions = [
        f"text tokens: ceil(characters / {rules.text.chars_per_token:g}) "
        f"(token rules {rules.version})"
    ]
    if max_output_tokens is None:
        assumptions.append(
            f"no max_output_tokens given: output bounded at {default_max_output} tokens"
        )
    thinking, thinking_notes = _thinking_allowance(model, task, thinking_budget)
    assumptions.extend(thinking_notes)
    output_max = (max_output_tokens or default_max_output) + thinking

    cost_range: CostRange | None = None
    reason: str | None = None
    priced = prices.match(model)
    if priced is None:
        reason = f"no price for model {model}; add it to the prices file"
    else:
        price_prefix, price = priced
        cost_range = CostRange(
            min=cost(price, prompt_tokens=input_tokens, output_tokens=0, batch=batch),
            max=cost(price, prompt_tokens=input_tokens, output_tokens=output_max, batch=batch),
        )
        assumptions.append(
            f"prices: {price_prefix} list prices as of {prices.as_of.isoformat()}"
            + (f", batch x{price.batch_factor}" if batch else "")
        )
    return Estimate(
        model=model,
        images=image_estimates,
        text_tokens=text,
        input_tokens=input_tokens,
        output_tokens_max=output_max,
        cost_usd=cost_range,
        rule=prefix,
        prices_as_of=prices.as_of,
        known=True,
        assumptions=assumptions,
        reason=reason,
    )


# --- Economy: downscale to the cheapest token tier -------------------------------------


class EconomyImage(BaseModel):
    """One image: its tokens now, the target size (None: unchanged), and the saving."""

    model_config = ConfigDict(extra="forbid")

    width: int
    height: int
    tokens: int | None
    target: ImageEstimate | None
    tokens_saved: int


class EconomyPlan(BaseModel):
    """Which images to shrink; ``max_side`` is the value to pass to
    ``vision.prepare.downscale`` for the images that have a target (it yields exactly
    the target sizes)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    task: TaskKind
    rule: str | None
    applies: bool
    max_side: int | None
    images: list[EconomyImage]
    tokens_saved: int
    reason: str | None = None


def _plan_image(
    rule: ModelRule, width: int, height: int, level: str | None, shrink: bool
) -> EconomyImage:
    tokens = image_tokens(rule, width, height, level)
    target_size = cheapest_size(rule, width, height) if shrink else None
    if target_size is None:
        return EconomyImage(width=width, height=height, tokens=tokens, target=None, tokens_saved=0)
    target_tokens = image_tokens(rule, *target_size, level)
    if target_tokens >= tokens:  # e.g. a LOW media_resolution already costs less
        return EconomyImage(width=width, height=height, tokens=tokens, target=None, tokens_saved=0)
    target = ImageEstimate(width=target_size[0], height=target_size[1], tokens=target_tokens)
    return EconomyImage(
        width=width,
        height=height,
        tokens=tokens,
        target=target,
        tokens_saved=tokens - target_tokens,
    )


def economy_plan(
    *,
    model: str,
    task: TaskKind,
    images: list[tuple[int, int]],
    media_resolution: str | None,
    rules: TokenRules,
    image_media_resolution: Sequence[str | None] | None = None,
) -> EconomyPlan:
    """Per image, the largest size in the rule's cheapest token tier and the tokens saved.

    Only for tasks that tolerate a smaller image (ECONOMY_TASKS: caption, classify, ask);
    for others, for size-independent rules (flat, media_resolution) and for images already
    in the cheapest tier, nothing changes and ``reason`` says why.
    """
    found = rules.match(model)
    if found is None:
        return EconomyPlan(
            model=model,
            task=task,
            rule=None,
            applies=False,
            max_side=None,
            images=[
                EconomyImage(width=w, height=h, tokens=None, target=None, tokens_saved=0)
                for w, h in images
            ],
            tokens_saved=0,
            reason=no_rule_reason(model),
        )
    prefix, rule = found
    levels = _image_levels(len(images), media_resolution, image_media_resolution)
    tolerant = task in ECONOMY_TASKS
    max_side = cheapest_max_side(rule)
    planned = [
        _plan_image(rule, w, h, level, tolerant and max_side is not None)
        for (w, h), level in zip(images, levels, strict=True)
    ]
    saved = sum(image.tokens_saved for image in planned)
    reason: str | None = None
    if not tolerant:
        reason = f"task {task} needs the full resolution; economy leaves its images alone"
    elif max_side is None:
        reason = f"the image rule of {prefix} ({rule.image_rule}) does not depend on image size"
    elif saved == 0:
        reason = "every image is already in the cheapest token tier"
    return EconomyPlan(
        model=model,
        task=task,
        rule=prefix,
        applies=saved > 0,
        max_side=max_side if saved > 0 else None,
        images=planned,
        tokens_saved=saved,
        reason=reason,
    )
