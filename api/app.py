"""The FastAPI application, built by a function from explicit settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI

from api.deps import ApiResources
from api.errors import install_error_handlers
from api.queue import JobQueue
from api.routes import estimate, health, images, jobs, models, retry
from api.throttle import SubmitThrottle
from models.blobs import BlobStore
from models.db import make_engine, make_session_factory
from models.settings import Settings, get_settings
from vision.catalogue import check_default_model
from vision.costing import CostBook


def open_resources(settings: Settings) -> ApiResources:
    costs = CostBook.load(settings.catalogue_override())
    check_default_model(costs.catalogue, settings.default_model)
    engine = make_engine(settings.database_url, busy_timeout_s=settings.api_db_busy_timeout_s)
    # Short timeouts: the submit limiter fails open when Redis is unreachable.
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=1, socket_connect_timeout=1)
    throttle = (
        SubmitThrottle(client, rate_per_s=settings.submit_rate_per_s, burst=settings.submit_burst)
        if settings.submit_rate_per_s > 0
        else None
    )
    return ApiResources(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        blobs=BlobStore(settings.blob_dir),
        queue=JobQueue(settings.redis_url),
        costs=costs,
        redis=client,
        throttle=throttle,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API app; resources open at startup and close at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = open_resources(settings or get_settings())
        app.state.resources = resources
        try:
            yield
        finally:
            resources.queue.close()
            resources.redis.close()
            resources.engine.dispose()

    app = FastAPI(
        title="visionq",
        version="0.1.0",
        summary="Image-understanding jobs on Google's Gemini API.",
        description="Submit vision jobs (caption, ask, classify, detect); poll for results. "
        "Authenticate with `Authorization: Bearer <key>` (`visionq keys create NAME`). "
        'Errors are `{"error": {"code": "...", "message": "..."}}`.',
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(retry.router)
    app.include_router(images.router)
    app.include_router(estimate.router)
    app.include_router(models.router)
    return app
