"""The economy option's plan: per image, the cheapest token tier the task tolerates, and
the tokens that saves. Pure, like vision/estimate.py, whose image sizes and levels it uses."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from visionq.vision.catalogue import Catalogue
from visionq.vision.estimate import ImageEstimate, image_levels, no_rule_reason
from visionq.vision.task_registry import TASKS
from visionq.vision.tasks import TaskKind
from visionq.vision.tokens import ModelRule, cheapest_max_side, cheapest_size, image_tokens


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
    # For models billed by media resolution level (Gemini 3): the request level to send.
    media_resolution: str | None = None
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
    catalogue: Catalogue,
    image_media_resolution: Sequence[str | None] | None = None,
) -> EconomyPlan:
    """Per image, the cheapest token tier the task tolerates, and the tokens saved.

    Only for tasks that tolerate a smaller image (TaskSpec.economy: caption, classify, ask).
    Size rules (tiles, crop units): the largest size in the cheapest tier (``max_side``).
    Level rules (Gemini 3's media resolution): the cheapest request level
    (``media_resolution``) for images without a level of their own. For other tasks, flat
    rules and images already in the cheapest tier nothing changes and ``reason`` says why.
    """
    found = catalogue.lookup(model)
    rule = found[1].image_tokens if found else None
    if found is None or rule is None:
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
    prefix = found[0]
    levels = image_levels(len(images), media_resolution, image_media_resolution)
    tolerant = TASKS[task].economy
    if tolerant and rule.image_rule == "media_resolution":
        return _level_plan(model, task, prefix, rule, images, levels, image_media_resolution)
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


def _level_plan(  # noqa: PLR0917 - private, the economy plan's own arguments
    model: str,
    task: TaskKind,
    prefix: str,
    rule: ModelRule,
    images: list[tuple[int, int]],
    levels: list[str | None],
    per_image: Sequence[str | None] | None,
) -> EconomyPlan:
    """Economy for a model billed by media resolution level: the request's cheapest level
    for every image that has no level of its own (a smaller image would cost the same)."""
    costs = {level: tokens for level, tokens in (rule.media_resolution or {}).items()}
    request_levels = [level for level in costs if level != "ULTRA_HIGH"]
    cheapest = min(request_levels, key=lambda level: costs[level])
    planned = []
    for index, ((width, height), level) in enumerate(zip(images, levels, strict=True)):
        tokens = image_tokens(rule, width, height, level)
        own_level = per_image is not None and per_image[index] is not None
        target_tokens = costs[cheapest]
        if own_level or target_tokens >= tokens:
            planned.append(EconomyImage(width=width, height=height, tokens=tokens, target=None,
                                        tokens_saved=0))  # fmt: skip
            continue
        target = ImageEstimate(width=width, height=height, tokens=target_tokens)
        planned.append(EconomyImage(width=width, height=height, tokens=tokens, target=target,
                                    tokens_saved=tokens - target_tokens))  # fmt: skip
    saved = sum(image.tokens_saved for image in planned)
    return EconomyPlan(
        model=model,
        task=task,
        rule=prefix,
        applies=saved > 0,
        max_side=None,
        media_resolution=cheapest if saved > 0 else None,
        images=planned,
        tokens_saved=saved,
        reason=None if saved > 0 else "every image is already at the cheapest level",
    )
