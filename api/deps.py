"""Typed dependencies: settings, one DB session per request, and the caller's tenant."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from visionq.api.errors import ApiError
from visionq.api.queue import JobQueue
from visionq.api.throttle import SubmitThrottle
from visionq.api.tiers import TurnaroundCache
from visionq.models.blobs import BlobStore
from visionq.models.keys import authenticate
from visionq.models.settings import Settings
from visionq.vision.costing import CostBook


@dataclass
class ApiResources:
    """Everything the routes use, opened by the app's lifespan and closed with it."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    queue: JobQueue
    costs: CostBook
    redis: redis.Redis
    # None when VISIONQ_SUBMIT_RATE_PER_S is 0 (no per-key limit).
    throttle: SubmitThrottle | None
    # Checks and stores the images of batch items (api/batch_intake.py); None: each call
    # makes its own pool of VISIONQ_BATCH_INTAKE_THREADS.
    intake_pool: ThreadPoolExecutor | None = None
    # Measured turnaround per model and tier, for tier auto (api/tiers.py); None: priors.
    turnarounds: TurnaroundCache | None = None


async def get_resources(request: Request) -> ApiResources:
    # async: a plain attribute read; a sync dependency would cost a thread-pool round trip.
    resources: ApiResources = request.app.state.resources
    return resources


ResourcesDep = Annotated[ApiResources, Depends(get_resources)]


def get_session(resources: ResourcesDep) -> Iterator[Session]:
    with resources.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class Caller:
    tenant: str
    key_id: int


def get_caller(request: Request, resources: ResourcesDep) -> Caller:
    """The tenant of the API key in ``Authorization: Bearer <key>``; 401 otherwise."""
    # Its own short session: a request-scoped one would hold a pooled connection for the
    # whole request, and a submit needs more; under load the pool ran dry (deadlock).
    with resources.sessions() as session:
        return authenticate_caller(request, session)


def authenticate_caller(request: Request, session: Session) -> Caller:
    """get_caller in a session of the caller's (see api.submission.authorize_submit)."""
    challenge = {"WWW-Authenticate": "Bearer"}
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(
            "unauthorized",
            "Send an API key as 'Authorization: Bearer <key>'; create one with "
            "'visionq keys create NAME'.",
            headers=challenge,
        )
    key = authenticate(session, secret.strip())
    if key is None:
        raise ApiError("invalid_api_key", "The API key is unknown or revoked.", challenge)
    request.state.tenant = key.tenant  # for the access log (api/accesslog.py)
    return Caller(tenant=key.tenant, key_id=key.id)


CallerDep = Annotated[Caller, Depends(get_caller)]
