"""POST /v1/estimate: what a job would cost, without running or storing anything."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from api.admission import estimate_of
from api.deps import CallerDep, ResourcesDep
from api.intake import read_job_request
from api.routes.jobs import CREATE_BODY, ERRORS
from api.validation import admit

router = APIRouter(prefix="/v1", tags=["cost"])


@router.post(
    "/estimate",
    responses=ERRORS,
    openapi_extra=CREATE_BODY,
    summary="Estimate a job's tokens and cost (same body as POST /v1/jobs)",
)
async def estimate(request: Request, caller: CallerDep, resources: ResourcesDep) -> dict[str, Any]:
    """Tokens per image, text tokens, the output bound and the USD range; nothing is enqueued.

    ``known`` is false (with a ``reason``) for a model the catalogue does not cover;
    ``warnings`` are those the job would carry (a deprecated model, an alias resolved).
    """
    del caller  # authenticated like every route; the estimate does not depend on the tenant
    raw = await read_job_request(request, resources.settings)
    admitted = await run_in_threadpool(admit, raw, resources.settings, resources.costs.catalogue)
    result: dict[str, Any] = estimate_of(admitted, resources).model_dump(mode="json")
    result["warnings"] = admitted.warnings
    return result
