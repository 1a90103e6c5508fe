"""The budget gate of a job: its cost estimate, and the refusal when the budget cannot hold it."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.orm import Session

from visionq.api.deps import ApiResources
from visionq.api.errors import ApiError
from visionq.api.job_checks import AdmittedJob
from visionq.models.budgets import budget_state
from visionq.vision.costing import usd_text
from visionq.vision.estimate import EconomyReport, Estimate, StoredEstimate, economy_plan


def estimate_of(admitted: AdmittedJob, resources: ApiResources) -> Estimate:
    """The job's token and cost estimate, as the worker will send it."""
    return resources.costs.estimate(
        task=admitted.task,
        model=admitted.model,
        prompt=admitted.prompt,
        labels=admitted.labels,
        options=admitted.options,
        sizes=[(image.width, image.height) for image in admitted.images],
    )


def apply_economy(
    admitted: AdmittedJob, resources: ApiResources
) -> tuple[AdmittedJob, StoredEstimate]:
    """With options.economy, send the images at the cheapest token tier the task tolerates:
    downscaled for models billed by size, at the lowest media resolution for models
    billed by level (Gemini 3).

    Returns the job (with options.max_side set when it saves tokens) and its estimate as
    stored, which then reports the tokens saved under "economy".
    """
    economy: EconomyReport | None = None
    options = admitted.options
    if options.economy:
        plan = economy_plan(
            model=admitted.model,
            task=admitted.task,
            media_resolution=options.media_resolution,
            images=[(image.width, image.height) for image in admitted.images],
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
            admitted = dataclasses.replace(admitted, options=options.model_copy(update=changes))
    return admitted, StoredEstimate.of(estimate_of(admitted, resources), economy)


def unbounded_refusal(admitted: AdmittedJob, estimate: Estimate) -> ApiError:
    """A 422 for a job whose cost has no known bound, submitted by a tenant with a budget."""
    reason = estimate.reason or "no price is known"
    return ApiError(
        "cost_unbounded",
        f"This tenant has a budget, and the cost of a job on {admitted.model} cannot be "
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
