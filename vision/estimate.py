"""What a job will cost before it runs (what the economy option would save: vision/economy.py).

Pure: the model catalogue is passed in (``vision.catalogue.load_catalogue``). Image sizes
are the sizes the model will receive, i.e. after any ``max_side`` downscale; the prompt
text is the text part actually sent (``vision.tasks.build_prompt``).

``Estimate.model_dump(mode="json")`` is::

    {"model": "gemini-3.5-flash-lite", "tier": "standard",
     "images": [{"width": 1000, "height": 800, "tokens": 1120}],
     "text_tokens": 15, "input_tokens": 1135, "output_tokens_max": 1280,
     "cost_usd": {"min": "0.0003405", "max": "0.0035405"},
     "rule": "gemini-3.5-flash-lite", "prices_as_of": "2026-12-04", "known": true,
     "assumptions": ["..."], "reason": null}

Costs are decimal strings (fixed-point, at most 10 decimals, no trailing zeros) so no
precision is lost to floats; ``Estimate.cost_usd.min``/``max`` are exact ``Decimal`` in
Python. ``known`` is false when the catalogue has no token rule for the model: then every
token and cost field is null and ``reason`` says what to add, never a guess. With a token
rule but no price for the day and tier, tokens are given, ``cost_usd`` is null and
``reason`` says the price is missing. ``rule`` is the catalogue entry used and
``prices_as_of`` the catalogue's date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer

from visionq.vision.catalogue import Catalogue, ServiceTier
from visionq.vision.generation import output_cap, thinking_allowance
from visionq.vision.levels import normalise_level
from visionq.vision.pricing import cost, format_usd
from visionq.vision.task_registry import TASKS
from visionq.vision.tasks import JobOptions, TaskKind
from visionq.vision.tokens import image_tokens

# What cost_usd.max covers, said in every priced estimate (and README's Costs): holding the
# worst case of every possible second call would make budget holds several times a job's
# real cost, so the hold is one call's most and extra calls are settled when the job ends.
MAX_COVERS = (
    "cost_usd.max covers one call (input plus the whole output cap); a second billed call "
    "(visionq's own cap raised once after the answer hit it, never a max_output_tokens you "
    "set; the schema retry; an empty or malformed answer asked for again) can cost up to "
    "that again, charged when the job ends"
)

UsdDecimal = Annotated[Decimal, PlainSerializer(format_usd, return_type=str, when_used="json")]


class ImageEstimate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int
    height: int
    tokens: int | None


class CostRange(BaseModel):
    """USD: ``min`` = input only (no output), ``max`` = input + the full output bound of
    ONE call (MAX_COVERS: a call asked for again costs up to that again)."""

    model_config = ConfigDict(extra="forbid")

    min: UsdDecimal
    max: UsdDecimal


class Estimate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    tier: ServiceTier = ServiceTier.STANDARD
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
    def unknown(
        cls,
        model: str,
        reason: str,
        images: Sequence[tuple[int, int]] = (),
        *,
        tier: ServiceTier = ServiceTier.STANDARD,
    ) -> Estimate:
        """No estimate: ``known`` false, tokens and costs null, and why."""
        return cls(
            model=model,
            tier=tier,
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


class EconomyReport(BaseModel):
    """What options.economy did to a job, stored under its estimate's "economy": whether it
    applied, the tokens saved and why not; ``media_resolution`` and ``max_side`` are
    present only when economy set them."""

    # A row written by another version may hold more: kept and shown as stored.
    model_config = ConfigDict(extra="allow")

    applied: bool
    tokens_saved: int | None = None
    reason: str | None = None
    media_resolution: str | None = None
    max_side: int | None = None


class StoredEstimate(Estimate):
    """A job's estimate as its row holds it: the submit's Estimate plus what economy did.

    Rows written by older versions may lack fields (each has a default here) or hold others
    (kept): ``stored()`` gives back exactly the keys the row holds, so the API shows an old
    row unchanged. One built by ``of`` has every Estimate field set.
    """

    model_config = ConfigDict(extra="allow")

    model: str = ""
    images: list[ImageEstimate] = []
    text_tokens: int | None = None
    input_tokens: int | None = None
    output_tokens_max: int | None = None
    cost_usd: CostRange | None = None
    rule: str | None = None
    prices_as_of: dt.date | None = None
    known: bool = False
    economy: EconomyReport | None = None

    @classmethod
    def of(cls, estimate: Estimate, economy: EconomyReport | None = None) -> StoredEstimate:
        """The row's estimate: every field of ``estimate`` set, "economy" only if given."""
        fields = {name: getattr(estimate, name) for name in Estimate.model_fields}
        if economy is not None:
            fields["economy"] = economy
        return cls(**fields)

    def stored(self) -> dict[str, Any]:
        """The estimate as the row stores it and the API shows it (JSON, the keys set)."""
        return self.model_dump(mode="json", exclude_unset=True)


def no_rule_reason(model: str) -> str:
    return (
        f"model {model} is not in the model catalogue (or has no image_tokens rule); add it "
        "to the VISIONQ_MODELS_FILE catalogue"
    )


def image_levels(
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
    options: JobOptions,
    catalogue: Catalogue,
    day: dt.date,
    tier: ServiceTier = ServiceTier.STANDARD,
    default_max_output: int | None = None,
) -> Estimate:
    """The token and cost estimate of one job (see the module docstring for the format).

    ``images`` are (width, height) as sent; options.media_resolution is the request's level,
    options.image_media_resolution optional per-image levels (Gemini 3 parts) overriding it.
    Thinking shares ``max_output_tokens`` (Gemini bills thoughts as output and counts them
    against the cap), so with a cap the output bound is the cap; without one it is
    ``default_max_output`` (None: the task's own answer room, TaskSpec.defaults)
    plus what thinking may add: exactly the cap vision.generation sends. Prices are those
    of ``tier`` on ``day``. Raises ValueError for an unknown media_resolution or a
    non-positive size.
    """
    found = catalogue.lookup(model)
    rule = found[1].image_tokens if found else None
    if found is None or rule is None:
        return Estimate.unknown(model, no_rule_reason(model), images, tier=tier)
    key, entry = found
    levels = image_levels(len(images), options.media_resolution, options.image_media_resolution)
    image_estimates = [
        ImageEstimate(width=w, height=h, tokens=image_tokens(rule, w, h, level))
        for (w, h), level in zip(images, levels, strict=True)
    ]
    text = catalogue.text_tokens(prompt_text)
    input_tokens = text + sum(image.tokens or 0 for image in image_estimates)

    assumptions = [
        f"text tokens: ceil(characters / {catalogue.text.chars_per_token:g}) "
        f"(model catalogue {catalogue.as_of.isoformat()})"
    ]
    thinking, thinking_notes = thinking_allowance(task, options, entry)
    answer = default_max_output or TASKS[task].defaults.answer_allowance(options)
    output_max = output_cap(task, options, entry, answer_tokens=answer)
    assert output_max is not None  # the model is in the catalogue
    if options.max_output_tokens is not None:
        if thinking:
            assumptions.append("thinking shares max_output_tokens: the cap bounds both")
    else:
        article = "an" if task[0] in "aeiou" else "a"  # an ask answer, a caption answer
        assumptions.append(
            f"no max_output_tokens given: sent as {output_max} ({answer} for {article} {task} "
            "answer and what thinking may add, within the model's output limit)"
        )
        assumptions.extend(thinking_notes)

    cost_range: CostRange | None = None
    reason: str | None = None
    price = entry.price(day, tier)
    if price is None:
        reason = (
            f"no {tier} price for model {model} on {day.isoformat()}; add it to the "
            "VISIONQ_MODELS_FILE catalogue"
        )
    else:
        cost_range = CostRange(
            min=cost(price, prompt_tokens=input_tokens, output_tokens=0),
            max=cost(price, prompt_tokens=input_tokens, output_tokens=output_max),
        )
        assumptions.append(f"prices: {key} {tier} list prices on {day.isoformat()}")
        assumptions.append(MAX_COVERS)
    return Estimate(
        model=model,
        tier=tier,
        images=image_estimates,
        text_tokens=text,
        input_tokens=input_tokens,
        output_tokens_max=output_max,
        cost_usd=cost_range,
        rule=key,
        prices_as_of=catalogue.as_of,
        known=True,
        assumptions=assumptions,
        reason=reason,
    )
