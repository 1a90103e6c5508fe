"""The batch lane's steps on a SQLite worker context for unit tests: the context, a fake
Batch API (tests/unit/batchfake.py), the gatherer and follower on it, and waiting jobs; the
``ctx`` and ``fake`` fixtures and the ``_rows`` query of the lane step tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select

from tests.unit.batchfake import FakeBatches
from tests.unit.batchlane import MODEL
from tests.unit.workercontext import worker_context
from visionq.models.jobs import NewInput, create_job
from visionq.models.tables import JOBS
from visionq.vision.tasks import JobOptions
from visionq.worker.batch_api import GeminiBatches
from visionq.worker.batch_follow import Follower
from visionq.worker.batch_gather import Gatherer
from visionq.worker.batch_requests import BatchBuilder, BatchPolicy
from visionq.worker.context import WorkerContext
from visionq.worker.files import UploadCache

IDENTITY = "test-project"


def lane_context(tmp_path: Path, *, min_requests: int, max_requests: int) -> WorkerContext:
    """A worker context whose lane sends batches of ``min_requests`` to ``max_requests``
    jobs, gathers for up to an hour and expects a batch to take 60 s."""
    return worker_context(
        tmp_path, batch_min_requests=min_requests, batch_max_requests=max_requests,
        batch_gather_s=3600, tier_prior_s='{"batch": 60}',
    )  # fmt: skip


def fake_batches(tmp_path: Path) -> FakeBatches:
    """A fake Batch API keeping its files in ``tmp_path``/gemini."""
    folder = tmp_path / "gemini"
    folder.mkdir()
    return FakeBatches(folder)


def lane_steps(ctx: WorkerContext, fake: FakeBatches, tmp_path: Path) -> tuple[Gatherer, Follower]:
    """The lane's gatherer and follower, talking to ``fake`` as project ``IDENTITY``."""
    batches = cast(GeminiBatches, fake)
    builder = BatchBuilder(
        blobs=ctx.blobs, uploads=cast(UploadCache, None), catalogue=ctx.costs.catalogue,
        policy=BatchPolicy.from_settings(ctx.settings), folder=tmp_path,
    )  # fmt: skip
    gatherer = Gatherer(ctx, batches, builder, settings=ctx.settings, identity=IDENTITY)
    follower = Follower(ctx, batches, settings=ctx.settings, identity=IDENTITY, folder=tmp_path)
    return gatherer, follower


def waiting_jobs(ctx: WorkerContext, count: int, deadline_s: float = 86400) -> list[str]:
    """``count`` new tier=batch caption jobs of tenant "t", each on an image of its own,
    waiting in the batch lane."""
    ids = []
    with ctx.sessions.begin() as session:
        for n in range(count):
            sha = ctx.blobs.put(f"\x89PNG image {n} {uuid.uuid4()}".encode())
            job = create_job(
                session, tenant="t", task="caption", model=MODEL, prompt=None, labels=None,
                options=JobOptions(), inputs=[NewInput(sha, "image/png", 64, 48, 30)],
                tier="batch", lane="batch", deadline_s=deadline_s,
            )  # fmt: skip
            session.flush()
            ids.append(job.id)
    return ids


def jobs_by_id(ctx: WorkerContext, ids: list[str]) -> dict[str, Any]:
    """The JOBS rows of ``ids``, by id."""
    with ctx.sessions() as session:
        return {row.id: row for row in session.execute(select(JOBS).where(JOBS.c.id.in_(ids)))}


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[WorkerContext]:
    """A lane context sending batches of exactly 3 jobs (``lane_context``)."""
    context = lane_context(tmp_path, min_requests=3, max_requests=3)
    yield context
    context.close()


@pytest.fixture
def fake(tmp_path: Path) -> FakeBatches:
    """A fake Batch API (``fake_batches``)."""
    return fake_batches(tmp_path)


def _rows(ctx: WorkerContext, table: Any, **where: Any) -> list[Any]:
    """The rows of ``table`` whose columns equal (or, given a list, are in) ``where``."""
    with ctx.sessions() as session:
        query = select(table)
        for key, value in where.items():
            column = table.c[key]
            query = query.where(column.in_(value) if isinstance(value, list) else column == value)
        return list(session.execute(query).all())
