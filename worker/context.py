"""Per-process resources of a worker: database, blob store and Gemini client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.blobs import BlobStore
from visionq.models.db import make_engine, make_session_factory
from visionq.models.settings import Settings
from visionq.vision.costing import CostBook
from visionq.worker.files import FilePolicy, UploadCache
from visionq.worker.gemini import GeminiCaller, gemini_identity, make_client
from visionq.worker.leasekeeper import LeaseKeeper
from visionq.worker.quota_learn import LearnPolicy
from visionq.worker.ratelimit import GeminiRateLimiter
from visionq.worker.retry import RetryPolicy


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    gemini: GeminiCaller
    uploads: UploadCache
    costs: CostBook
    leases: LeaseKeeper
    retry: RetryPolicy
    # None when no rate limits are configured (nothing to pace, no Redis round trip).
    limiter: GeminiRateLimiter | None
    # The limiter's Redis connection pool, closed with the context (None without limits).
    redis: redis.Redis | None = None

    @classmethod
    def build(cls, settings: Settings) -> WorkerContext:
        """Open every resource a job needs; ``close`` releases them."""
        # Up to 40 connections: a worker runs up to 64 jobs at once, each holding a
        # connection only for its short transactions.
        engine = make_engine(
            settings.database_url, pool_size=20, busy_timeout_s=settings.db_busy_timeout_s
        )
        sessions = make_session_factory(engine)
        blobs = BlobStore.from_settings(settings)
        gemini = GeminiCaller(make_client(settings), secret=settings.gemini_key())
        uploads = UploadCache(
            sessions=sessions,
            gemini=gemini,
            blobs=blobs,
            identity=gemini_identity(settings),
            policy=FilePolicy.from_settings(settings),
        )
        return cls(
            settings=settings, engine=engine, sessions=sessions, blobs=blobs, gemini=gemini,
            uploads=uploads, costs=CostBook.load(settings.catalogue_override()),
            leases=LeaseKeeper(sessions, lease_s=settings.lease_s),
            retry=RetryPolicy.from_settings(settings), **_limiter(settings),
        )  # fmt: skip

    def close(self) -> None:
        """Release what ``build`` opened: lease renewals, the SDK client, Redis, the pool."""
        self.leases.close()
        self.gemini.close()
        if self.redis is not None:
            self.redis.close()
        self.engine.dispose()


class _Limiting(TypedDict):
    limiter: GeminiRateLimiter | None
    redis: redis.Redis | None


def _limiter(settings: Settings) -> _Limiting:
    """The rate limiter and its Redis client, both None when no limits are configured."""
    if not settings.rate_limits:
        return {"limiter": None, "redis": None}
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
    # Parsed and checked once, when the settings loaded (models/settings.py).
    limiter = GeminiRateLimiter(
        client, settings.rate_limits, window_s=settings.rate_window_s,
        margin_s=settings.rate_margin_s, learn=LearnPolicy() if settings.rate_learn else None,
    )  # fmt: skip
    return {"limiter": limiter, "redis": client}
