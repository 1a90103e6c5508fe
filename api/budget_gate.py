"""The budget gate of a job: its cost estimate, and the refusal when the budget cannot hold it."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.orm import Session

from visionq.api.deps import ApiResources
from visionq.api.errors import ApiError
from visionq.api.job_checks import AdmittedFields, AdmittedJob
from visionq.api.tiers import requested_tier, resolve_lane
from visionq.models.budgets import budget_state
from visionq.vision.costing import usd_text
from visionq.vision.economy import economy_plan
from visionq.vision.estimate import EconomyReport, Estimate, StoredEstimate
from visionq.vision.tasks import JobOptions
from visionq.vision.tiers import Tier


def estimate_of(admitted: AdmittedJob, resources: ApiResources) -> Estimate:
    """The job's token and cost estimate, as the worker will send it."""
    return _estimate(admitted.fields, _sizes(admitted), resources)


def _sizes(admitted: AdmittedJob) -> list[tuple[int, int]]:
    return [(image.width, image.height) for image in admitted.images]


def _estimate(
    fields: AdmittedFields, sizes: list[tuple[int, int]], resources: ApiResources
) -> Estimate:
    """The estimate at the price of the job's lane (its ``tier``: the tier asked for, or
    the one auto chose, whose reason is added to the assumptions)."""
    settings, catalogue = resources.settings, resources.costs.catalogue
    choice = resolve_lane(fields.options, fields.model, settings, catalogue, resources.turnarounds)
    estimate = resources.costs.estimate(
        task=fields.task,
        model=fields.model,
        prompt=fields.prompt,
        labels=fields.labels,
        options=fields.options,
        sizes=sizes,
        tier=choice.lane,
    )
    if requested_tier(fields.options, settings) is Tier.AUTO:
        estimate = estimate.model_copy(
            update={"assumptions": [*estimate.assumptions, choice.reason]}
        )
    return estimate


def apply_economy(
    admitted: AdmittedJob, resources: ApiResources
) -> tuple[AdmittedJob, StoredEstimate]:
    """The job with the options economy_and_estimate chose, and its estimate as stored."""
    options, estimate = economy_and_estimate(admitted.fields, _sizes(admitted), resources)
    if options is not admitted.options:
        admitted = dataclasses.replace(admitted, options=options)
    return admitted, estimate


def economy_and_estimate(
    fields: AdmittedFields, sizes: list[tuple[int, int]], resources: ApiResources
) -> tuple[JobOptions, StoredEstimate]:
    """With options.economy, send the images at the cheapest token tier the task tolerates:
    downscaled for models billed by size, at the lowest media resolution for models
    billed by level (Gemini 3). Only the images' ``sizes`` (width, height) are needed.

    Returns the job's options (with max_side set when it saves tokens; the same object
    when nothing changed) and its estimate as stored, which then reports the tokens saved
    under "economy".
    """
    economy: EconomyReport | None = None
    options = fields.options
    if options.economy:
        plan = economy_plan(
            model=fields.model,
            task=fields.task,
            media_resolution=options.media_resolution,
            images=sizes,
            catalogue=resources.costs.catalogue,
            image_media_resolution=options.image_media_resolution,
        )
        changes: dict[str, Any] = {}
        if plan.media_resolution is not None:
            changes["media_resolution"] = plan.media_resolution
        current = options.max_side
        if plan.applies and plan.max_side and (current is None or plan.max_side < current):
            changes["max_side"] = plan.max_side
        # Only the keys economy changed are set, so only they are stored under "economy".
        economy = EconomyReport(
            applied=plan.applies, tokens_saved=plan.tokens_saved, reason=plan.reason, **changes
        )
        if changes:
            options = options.model_copy(update=changes)
            fields = dataclasses.replace(fields, options=options)
    return options, StoredEstimate.of(_estimate(fields, sizes, resources), economy)


def unbounded_refusal(model: str, estimate: Estimate) -> ApiError:
    """A 422 for a job whose cost has no known bound, submitted by a tenant with a budget."""
    reason = estimate.reason or "no price is known"
    return ApiError(
        "cost_unbounded",
        f"This tenant has a budget, and the cost of a job on {model} cannot be "
        f"bounded ({reason}). Send a model with a known price (`visionq models`), or ask the "
        "operator to add its price to the VISIONQ_MODELS_FILE catalogue.",
    )


def budget_refusal(session: Session, tenant: str, needed_nusd: int) -> ApiError:
    """A 402 stating budget, spent, reserved and needed, and what to do about it."""
    state = budget_state(session, tenant)
    parts = []
    if state.daily_nusd is not None:
        spent = usd_text(state.spent_day_nusd)
        parts.append(f"daily budget ${usd_text(state.daily_nusd)}, spent today ${spent}")
    if state.monthly_nusd is not None:
        spent = usd_text(state.spent_month_nusd)
        parts.append(f"monthly budget ${usd_text(state.monthly_nusd)}, spent this month ${spent}")
    return ApiError(
        "budget_exceeded",
        f"This job may cost up to ${usd_text(needed_nusd)}, more than the remaining budget of "
        f"tenant {tenant!r}: {'; '.join(parts)}; reserved by unfinished jobs "
        f"${usd_text(state.reserved_nusd)}. Wait for the next period, raise the budget "
        "(visionq budgets set), or lower options.max_output_tokens.",
    )
