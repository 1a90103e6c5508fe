"""GET /v1/spending: the caller's tenant's spending, as `visionq cost report` counts it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from visionq.api.deps import CallerDep, SessionDep
from visionq.api.openapi import error_responses
from visionq.api.spending_schemas import (
    EstimationRow,
    SpendingReport,
    SpendingRow,
    SpendingTotals,
)
from visionq.models.reports import spending
from visionq.vision.costing import usd_text

router = APIRouter(prefix="/v1", tags=["cost"])

MAX_DAYS = 366


@router.get(
    "/spending",
    response_model=SpendingReport,
    responses=error_responses(401, 422, 503),
    summary="Spending per day, model and tier",
)
def read_spending(
    caller: CallerDep,
    session: SessionDep,
    days: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_DAYS,
            description="How many whole UTC days, today included, to count (jobs by the "
            "time they finished).",
        ),
    ] = 30,
) -> SpendingReport:
    """The tenant's finished jobs of the last ``days`` UTC days: cost and the same usage at
    standard prices per day, model and served tier, the totals, and how close the
    input-token estimates were to the bills."""
    until = datetime.now(UTC).date()
    since = until - timedelta(days=days - 1)
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    report = spending(session, since=start, tenant=caller.tenant)
    total = report.total
    return SpendingReport(
        since=since,
        until=until,
        rows=[
            SpendingRow(
                day=date.fromisoformat(cell.day),
                model=cell.model,
                tier=cell.tier,
                jobs=cell.jobs,
                cached=cell.cached,
                prompt_tokens=cell.prompt_tokens,
                output_tokens=cell.output_tokens,
                cost_usd=usd_text(cell.cost_nusd),
                standard_usd=usd_text(cell.standard_nusd),
            )
            for cell in report.cells
        ],
        totals=SpendingTotals(
            jobs=total.jobs,
            cost_usd=usd_text(total.cost_nusd),
            standard_usd=usd_text(total.standard_nusd),
            saved_usd=usd_text(total.saved_nusd),
            saved_pct=total.saved_pct,
        ),
        estimation=[
            EstimationRow(model=model, jobs=jobs, mean_abs_pct=mean, worst_abs_pct=worst)
            for model, jobs, mean, worst in report.estimation
        ],
    )
