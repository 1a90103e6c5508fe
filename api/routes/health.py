"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from visionq.api.deps import ApiResources, ResourcesDep
from visionq.api.schemas import HealthStatus
from visionq.models.batch_lane_status import lane_status
from visionq.models.blobs import BlobStoreUnavailableError
from visionq.models.heartbeats import workers_seen
from visionq.models.migrate import head_revision, known_revisions, revision_of
from visionq.models.tables import utcnow

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthStatus)
def healthz() -> HealthStatus:
    """The process is alive (it checks nothing else)."""
    return HealthStatus(status="ok")


@router.get("/readyz", response_model=HealthStatus, responses={503: {"model": HealthStatus}})
def readyz(resources: ResourcesDep) -> JSONResponse:
    """Ready to run jobs end to end: the database answers, its schema is at the migrations'
    head, Redis answers, a worker beat within VISIONQ_WORKER_HEARTBEAT_S, and the image store
    (VISIONQ_BLOB_DIR: an object store's bucket) answers. 503 otherwise,
    each failing check saying what to do (`checks`). `details` informs and never fails it:
    the Gemini Batch lane's batches (stuck, lost or stalled ones show there)."""
    checks: dict[str, str] = {}
    try:
        with resources.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            revision = revision_of(connection)
        checks["database"] = "ok"
        checks["migrations"] = _migrations(revision)
    except SQLAlchemyError as exc:
        checks["database"] = f"error: {type(exc).__name__}; check VISIONQ_DATABASE_URL"
        checks["migrations"] = "error: unknown while the database is unreachable"
    checks.update(_redis_and_workers(resources))
    checks["blob_store"] = _blob_store(resources)
    ready = all(value == "ok" for value in checks.values())
    details = {"batch_lane": _batch_lane(resources)} if checks["migrations"] == "ok" else {}
    body = HealthStatus(status="ready" if ready else "not ready", checks=checks, details=details)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


def _blob_store(resources: ApiResources) -> str:
    """One look at the image store (an object store's bucket; models/blobs.py::check)."""
    try:
        resources.blobs.check()
    except BlobStoreUnavailableError as exc:
        return f"error: {exc}"
    return "ok"


def _batch_lane(resources: ApiResources) -> dict[str, Any]:
    """The batch lane's rows not closed (models/batch_lane_status.py: one GROUP BY), and
    whether the lane is on; an error is reported, never raised."""
    settings = resources.settings
    detail: dict[str, Any] = {"enabled": settings.batch_lane_enabled}
    try:
        with resources.sessions() as session:
            found = lane_status(session, now=utcnow(), stall_s=settings.batch_stall_s)
    except SQLAlchemyError as exc:
        return {**detail, "error": type(exc).__name__}
    return {**detail, **found.as_dict()}


def _migrations(revision: str | None) -> str:
    head = head_revision()
    if revision == head:
        return "ok"
    if revision is None:
        return f"error: not migrated, head is {head}; run visionq db upgrade"
    if revision not in known_revisions():
        # A newer visionq migrated it: upgrading this one cannot help.
        return f"error: at {revision}, newer than this visionq (head {head}); deploy the newer one"
    return f"error: at {revision}, head is {head}; run visionq db upgrade"


def _redis_and_workers(resources: ApiResources) -> dict[str, str]:
    window = resources.settings.worker_heartbeat_s
    try:
        resources.redis.ping()
        seen = workers_seen(resources.redis, window)
    except redis.RedisError as exc:
        return {
            "redis": f"error: {type(exc).__name__}; check VISIONQ_REDIS_URL",
            "workers": "error: unknown while Redis is unreachable",
        }
    if seen.recent:
        return {"redis": "ok", "workers": "ok"}
    message = f"error: no worker seen in {window:g} s; start visionq worker"
    if seen.last_seen_s_ago is not None:
        message += f" (the last one beat {seen.last_seen_s_ago:.0f} s ago)"
    return {"redis": "ok", "workers": message}
