"""The FastAPI application, built by a function from explicit settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from visionq.api.accesslog import AccessLog
from visionq.api.console_files import install_console
from visionq.api.cors import install_cors
from visionq.api.deps import ApiResources
from visionq.api.errors import install_error_handlers
from visionq.api.openapi import install_openapi
from visionq.api.queue import JobQueue
from visionq.api.routes import (
    batch_items,
    batches,
    estimate,
    health,
    images,
    inputs,
    jobs,
    metrics,
    models,
    retry,
    spending,
    webhook_log,
    webhooks,
)
from visionq.api.throttle import SubmitThrottle
from visionq.api.tiers import TurnaroundCache
from visionq.api.webhook_events import describe_webhooks
from visionq.models.blobs import BlobStore
from visionq.models.db import make_engine, make_session_factory
from visionq.models.fairqueue import FairQueue
from visionq.models.jobrefs import MIN_PREFIX
from visionq.models.metrics import use_catalogue
from visionq.models.settings import Settings, get_settings
from visionq.vision.catalogue import check_default_model
from visionq.vision.costing import CostBook


def _fair_queue(client: redis.Redis, settings: Settings) -> FairQueue | None:
    """Fair share's waiting sets (models/fairqueue.py) on the API's Redis client (short
    timeouts: a Redis error is a refused send, the sweeper sends the job); None: FIFO."""
    return FairQueue(client, weights=settings.tenant_weights) if settings.fair_share else None


def open_resources(settings: Settings) -> ApiResources:
    costs = CostBook.load(settings.catalogue_override())
    check_default_model(costs.catalogue, settings.default_model)
    use_catalogue(costs.catalogue)  # model labels of the metrics: this catalogue's ids
    engine = make_engine(settings.database_url, busy_timeout_s=settings.api_db_busy_timeout_s)
    # Short timeouts: the submit limiter fails open when Redis is unreachable.
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=1, socket_connect_timeout=1)
    throttle = (
        SubmitThrottle(client, rate_per_s=settings.submit_rate_per_s, burst=settings.submit_burst)
        if settings.submit_rate_per_s > 0
        else None
    )
    sessions = make_session_factory(engine)
    return ApiResources(
        settings=settings,
        engine=engine,
        sessions=sessions,
        blobs=BlobStore.from_settings(settings),
        queue=JobQueue(settings.redis_url, fair=_fair_queue(client, settings)),
        costs=costs,
        redis=client,
        throttle=throttle,
        # Checks and stores batch items' images (Pillow and hashing release the GIL).
        intake_pool=ThreadPoolExecutor(
            max_workers=settings.batch_intake_threads, thread_name_prefix="batch-intake"
        ),
        turnarounds=TurnaroundCache(sessions, settings),
    )


DESCRIPTION = (
    "Submit vision jobs and poll for their results. Tasks: caption (describe an image), ask "
    "(answer a question about one or more images), classify (pick one of your labels), "
    "detect (boxes and labels), segment (boxes, labels and masks), compare (how images "
    "differ) and custom (an answer satisfying your JSON Schema). Authenticate with "
    "`Authorization: Bearer <key>` (`visionq keys create NAME`). Errors are "
    '`{"error": {"code": "...", "message": "..."}}`, a method a path does not have '
    "included (405 method_not_allowed, with an Allow header). A job id in a path may be a "
    f"unique prefix of at least {MIN_PREFIX} characters."
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
            if resources.intake_pool is not None:
                resources.intake_pool.shutdown(wait=True, cancel_futures=True)
            resources.queue.close()
            resources.redis.close()
            resources.engine.dispose()

    # /docs and /redoc serve Swagger UI and ReDoc from files shipped in fastapi-offline's
    # package (under /static-offline-docs), not from a CDN: they work without a network.
    app = FastAPIOffline(
        title="visionq",
        version="0.1.0",
        summary="Image-understanding jobs on Google's Gemini API.",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Swagger UI would otherwise ask validator.swagger.io to check the document.
        swagger_ui_parameters={"validatorUrl": None},
        # Operation ids are the route functions' names, so generated clients get
        # read_job rather than read_job_v1_jobs_job_id_get.
        generate_unique_id_function=lambda route: route.name,
    )
    install_openapi(app, lambda: settings or get_settings())
    # The events visionq POSTs to webhook endpoints, as the document's `webhooks` section.
    describe_webhooks(app)
    install_error_handlers(app)
    # Inside Starlette's ServerErrorMiddleware (add_middleware puts user middleware
    # there), so it never sees the 500 that one sends; an unhandled error still passes
    # through it, and its `finally` logs the request as a 500.
    app.add_middleware(AccessLog)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(jobs.router)
    app.include_router(retry.router)
    app.include_router(images.router)
    app.include_router(estimate.router)
    app.include_router(models.router)
    app.include_router(batches.router)
    app.include_router(batch_items.router)
    app.include_router(webhooks.router)
    app.include_router(webhook_log.router)
    app.include_router(inputs.router)
    app.include_router(spending.router)
    served = settings or get_settings()
    if served.console_enabled:
        install_console(app)
    # Last: the outermost middleware, so its headers reach error answers too.
    install_cors(app, served)
    return app
