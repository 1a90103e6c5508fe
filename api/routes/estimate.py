"""POST /v1/estimate: what a job would cost, without running or storing anything."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from visionq.api.budget_gate import estimate_of
from visionq.api.deps import CallerDep, ResourcesDep
from visionq.api.job_checks import admit
from visionq.api.openapi import error_responses
from visionq.api.request_body import read_job_request
from visionq.api.routes.jobs import ESTIMATE_BODY
from visionq.api.schemas import EstimatePublic

router = APIRouter(prefix="/v1", tags=["cost"])


@router.post(
    "/estimate",
    response_model=EstimatePublic,
    responses=error_responses(400, 401, 413, 415, 422, 502, 503, 504, tiers=True),
    openapi_extra=ESTIMATE_BODY,
    summary="Estimate a job's tokens and cost (same body as POST /v1/jobs)",
)
async def estimate(request: Request, caller: CallerDep, resources: ResourcesDep) -> EstimatePublic:
    """Tokens per image, text tokens, the output bound and the USD range; nothing is enqueued.

    ``known`` is false (with a ``reason``) for a model the catalogue does not cover;
    ``warnings`` are those the job would carry (a deprecated model, an alias resolved).
    """
    del caller  # authenticated like every route; the estimate does not depend on the tenant
    raw = await read_job_request(request, resources.settings)
    admitted = await run_in_threadpool(admit, raw, resources.settings, resources.costs.catalogue)
    # In the thread pool: tier auto may read the measured turnarounds (api/tiers.py).
    found = await run_in_threadpool(estimate_of, admitted, resources)
    return EstimatePublic.model_validate({**dict(found), "warnings": admitted.warnings})
