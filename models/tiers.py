"""Measured turnaround per model and served tier (table ``tier_turnarounds``).

Turnaround is what a user waits: ``finished_at - created_at`` of succeeded jobs served in
that tier (queue wait, gather wait, Gemini's time and fallbacks included). The batch lane
measures it each tick over a recent window; ``auto`` reads it to choose a tier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionq.models.tables import JOBS, TIER_TURNAROUNDS, JobStatus, utcnow


@dataclass(frozen=True)
class Turnaround:
    """p50 and p90 seconds of ``samples`` jobs of ``model`` served in ``tier``."""

    model: str
    tier: str
    samples: int
    p50_s: float
    p90_s: float
    measured_at: datetime


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of ascending values (the value a share ``fraction`` of the
    samples does not exceed); portable, unlike SQL percentile functions."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])


def record_turnarounds(
    session: Session, *, window_s: float, max_samples: int = 500
) -> list[Turnaround]:
    """Measure each (model, served tier) over the jobs that succeeded in the last
    ``window_s`` (the newest ``max_samples`` of each) and upsert the table; returns what
    was stored. Answers reused from the cache are not turnarounds of a tier: left out."""
    now = utcnow()
    since = now - timedelta(seconds=window_s)
    recent = (
        (JOBS.c.status == JobStatus.SUCCEEDED)
        & (JOBS.c.finished_at >= since)
        & JOBS.c.served_tier.is_not(None)
        & JOBS.c.cached_from.is_(None)
    )
    pairs = session.execute(select(JOBS.c.model, JOBS.c.served_tier).where(recent).distinct()).all()
    measured = []
    for model, tier in sorted(pairs):
        rows = session.execute(
            select(JOBS.c.created_at, JOBS.c.finished_at)
            .where(recent, JOBS.c.model == model, JOBS.c.served_tier == tier)
            .order_by(JOBS.c.finished_at.desc())
            .limit(max_samples)
        ).all()
        waits = sorted(max(0.0, (end - start).total_seconds()) for start, end in rows)
        if not waits:
            continue
        found = Turnaround(model, tier, len(waits), percentile(waits, 0.5),
                           percentile(waits, 0.9), now)  # fmt: skip
        _upsert(session, found)
        measured.append(found)
    return measured


def _upsert(session: Session, found: Turnaround) -> None:
    values = {"samples": found.samples, "p50_s": found.p50_s, "p90_s": found.p90_s,
              "measured_at": found.measured_at}  # fmt: skip
    key = (TIER_TURNAROUNDS.c.model == found.model) & (TIER_TURNAROUNDS.c.tier == found.tier)
    if session.execute(update(TIER_TURNAROUNDS).where(key).values(**values)).rowcount:  # type: ignore[attr-defined]
        return
    try:
        with session.begin_nested():
            session.execute(
                insert(TIER_TURNAROUNDS).values(model=found.model, tier=found.tier, **values)
            )
    except IntegrityError:  # inserted by another lane meanwhile: ours is as fresh
        session.execute(update(TIER_TURNAROUNDS).where(key).values(**values))


def read_turnarounds(session: Session) -> dict[tuple[str, str], Turnaround]:
    """Every measured (model, tier) -> its turnaround."""
    rows = session.execute(
        select(
            TIER_TURNAROUNDS.c.model, TIER_TURNAROUNDS.c.tier, TIER_TURNAROUNDS.c.samples,
            TIER_TURNAROUNDS.c.p50_s, TIER_TURNAROUNDS.c.p90_s, TIER_TURNAROUNDS.c.measured_at,
        )
    ).all()  # fmt: skip
    return {(row.model, row.tier): Turnaround(*row) for row in rows}
