"""Compare estimated and billed tokens, and propose catalogue image-token rules that fit
the bills."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from visionq.vision.estimate import Estimate


@dataclass(frozen=True)
class Observation:
    """One finished job: what we estimated and what Gemini billed."""

    model: str
    estimated_input: int | None
    billed_input: int | None
    # Per image (single-image jobs only): estimated tokens, billed IMAGE tokens, size.
    estimated_image: int | None
    billed_image: int | None
    size: tuple[int, int] | None


@dataclass(frozen=True)
class ModelAccuracy:
    model: str
    jobs: int
    mean_abs_pct: float
    worst_abs_pct: float
    proposal: dict[str, Any] | None
    finding: str | None


def observation_of(
    model: str, estimate: Estimate | None, usage: dict[str, Any] | None
) -> Observation:
    """An Observation from a job's stored estimate and usage_metadata (snake_case)."""
    billed_input = usage.get("prompt_token_count") if usage else None
    images = estimate.images if estimate else []
    billed_image = None
    for detail in (usage or {}).get("prompt_tokens_details") or []:
        if detail.get("modality") == "IMAGE":
            billed_image = detail.get("token_count")
    single = images[0] if len(images) == 1 else None
    return Observation(
        model=model,
        estimated_input=estimate.input_tokens if estimate else None,
        billed_input=billed_input,
        estimated_image=single.tokens if single else None,
        billed_image=billed_image if single else None,
        size=(single.width, single.height) if single else None,
    )


def accuracy(observations: Iterable[Observation], min_jobs: int = 3) -> list[ModelAccuracy]:
    """Per model: estimation error of input tokens, and a rule proposal when bills disagree."""
    by_model: dict[str, list[Observation]] = defaultdict(list)
    for item in observations:
        if item.estimated_input and item.billed_input:
            by_model[item.model].append(item)
    report = []
    for model, items in sorted(by_model.items()):
        errors = [abs(i.estimated_input - i.billed_input) / i.billed_input * 100 for i in items]  # type: ignore[operator]
        proposal, finding = _propose(model, items, min_jobs)
        report.append(
            ModelAccuracy(
                model, len(items), statistics.mean(errors), max(errors), proposal, finding
            )
        )
    return report


def _propose(
    model: str, items: list[Observation], min_jobs: int
) -> tuple[dict[str, Any] | None, str | None]:
    pairs = [(i.estimated_image, i.billed_image, i.size) for i in items
             if i.estimated_image is not None and i.billed_image is not None]  # fmt: skip
    if len(pairs) < min_jobs:
        return None, None
    differing = [p for p in pairs if p[0] != p[1]]
    if len(differing) * 2 < len(pairs):
        return None, None
    billed = {p[1] for p in pairs}
    sizes = {p[2] for p in pairs}
    if len(billed) == 1 and len(sizes) > 1:
        flat = billed.pop()
        return (
            {model: {"image_tokens": {"image_rule": "flat", "tile_tokens": flat}}},
            f"{model}: every image was billed {flat} tokens whatever its size "
            f"({len(pairs)} images, {len(sizes)} sizes), unlike the rule; a flat entry fits.",
        )
    return None, (
        f"{model}: billed image tokens differ from the rule in {len(differing)} of "
        f"{len(pairs)} images, with no simple pattern; check the model's image_tokens rule "
        "in the catalogue."
    )
