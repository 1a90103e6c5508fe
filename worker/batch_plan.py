"""When the batch lane gathers: how long a Gemini batch of a model is expected to take,
whether a model's waiting jobs make a batch now, the generation of a new batch, and what a
gather pass reports (worker/batch_gather.py; split from it)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from visionq.models.gemini_batches import Gatherable
from visionq.models.settings import Settings
from visionq.models.tables import ATTEMPTS, GEMINI_BATCHES
from visionq.models.tiers import read_turnarounds
from visionq.vision.catalogue import ServiceTier


def expected_batch_s(session: Session, model: str, settings: Settings) -> float:
    """How long a Gemini batch of ``model`` is expected to take: the measured p90 when
    enough jobs were measured (models/tiers.py), else the prior (VISIONQ_TIER_PRIOR_S)."""
    measured = read_turnarounds(session).get((model, ServiceTier.BATCH.value))
    if measured is not None and measured.samples >= settings.tier_min_samples:
        return measured.p90_s
    return settings.tier_prior_s[ServiceTier.BATCH]


def batch_due(group: Gatherable, *, now: datetime, expected_s: float, settings: Settings) -> bool:
    """Whether a model's waiting jobs make a batch now: enough of them, the oldest waited
    long enough, or the nearest deadline leaves no more time to wait."""
    if group.count >= settings.batch_min_requests:
        return True
    if (now - group.oldest).total_seconds() >= settings.batch_gather_s:
        return True
    if group.nearest_deadline is None:
        return False
    left = (group.nearest_deadline - now).total_seconds()
    return left < expected_s * settings.tier_safety + settings.batch_gather_s


def next_resends(session: Session, job_ids: Collection[str]) -> int:
    """The generation of a batch of these jobs: one more than the most any of them was
    already sent in a Gemini batch (0 for jobs never sent)."""
    if not job_ids:
        return 0
    # A batch Gemini never had (create refused for now, upload failed, never confirmed)
    # is no generation: only those it accepted count.
    latest = session.execute(
        select(func.max(GEMINI_BATCHES.c.resends))
        .select_from(
            ATTEMPTS.join(GEMINI_BATCHES, ATTEMPTS.c.gemini_batch_id == GEMINI_BATCHES.c.id)
        )
        .where(ATTEMPTS.c.job_id.in_(list(job_ids)), GEMINI_BATCHES.c.gemini_name.is_not(None))
    ).scalar_one_or_none()
    return 0 if latest is None else int(latest) + 1


@dataclass
class GatherReport:
    """What one gather pass did."""

    batches: int = 0
    jobs: int = 0
    failed_jobs: int = 0
    released: int = 0
    ambiguous: int = 0
    cached: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "batches_created": self.batches, "jobs_sent": self.jobs,
            "jobs_failed": self.failed_jobs, "jobs_released": self.released,
            "creates_unconfirmed": self.ambiguous, "jobs_cached": self.cached,
        }  # fmt: skip
