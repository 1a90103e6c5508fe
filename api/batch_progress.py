"""A batch as the API shows it, and its progress: counts, tokens, cost, the whole batch's
estimate and when it should end.

Counts are computed on read from the items' latest jobs (``models.batches.progress_rows``, one
GROUP BY): the worker maintains nothing, so no batch row is a hot spot for every job's end.
The ETA divides the work left by a rate. Work left: the queued and running jobs, plus the
expected items not added yet (``expected_items - item_count``, counted as queued). Rate: the
jobs a worker ran (cache hits and jobs cancelled while queued take no worker time, so they
count in neither) that ended in the last ``VISIONQ_BATCH_ETA_WINDOW_S`` seconds, over that
window or, if shorter, the time since the first of them started (measured); capped by what
the rate limits allow (``VISIONQ_RATE_LIMITS``: an upper bound, the quota being shared).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

from sqlalchemy.orm import Session

from visionq.api.batch_schemas import (
    BatchLaneProgress,
    BatchProgress,
    BatchPublic,
    BatchState,
    GeminiBatchWait,
    StatusCounts,
    TokenTotals,
)
from visionq.models.batch_lane_status import UserBatchWait, user_batch_wait
from visionq.models.batches import ProgressRow, progress_rows
from visionq.models.ratelimits import ALL_MODELS, DEFAULT_USD_WINDOW_S, ModelQuota
from visionq.models.settings import Settings
from visionq.models.tables import Batch, utcnow
from visionq.models.tables import BatchState as StoredState
from visionq.vision.costing import from_nano, usd_text
from visionq.vision.estimate import CostRange

# Fewer items ended in the window than this: too few to measure a rate from.
MIN_MEASURED = 10
EXPIRED = "expired"
_ENDED = ("succeeded", "failed", "cancelled", EXPIRED)
EtaBasis = Literal["measured", "quota", "none"]


def eta(
    remaining: int, recent: int, window_s: float, quota_rate: float | None
) -> tuple[float | None, float | None, EtaBasis]:
    """(rate per second, seconds left, basis) for ``remaining`` items, ``recent`` of which
    ended in the last ``window_s`` seconds, under a quota allowing ``quota_rate`` items/s.

    The measured rate needs at least MIN_MEASURED recent ends; the quota caps it (work
    cannot go faster than the limiter lets it). Basis "measured" when the measured rate is
    the one used, "quota" when the quota's is, "none" when neither is known. Nothing left:
    0 seconds.
    """
    measured = recent / window_s if recent >= MIN_MEASURED and window_s > 0 else None
    rate: float | None
    basis: EtaBasis
    if measured is not None and (quota_rate is None or measured <= quota_rate):
        rate, basis = measured, "measured"
    elif quota_rate is not None and quota_rate > 0:
        rate, basis = quota_rate, "quota"
    else:
        rate, basis = None, "none"
    if remaining <= 0:
        return rate, 0.0, basis
    if rate is None or rate <= 0:
        return None, None, "none"
    return rate, remaining / rate, basis


def quota_rate(
    settings: Settings, model: str | None, avg_tokens: float | None, avg_usd: float | None
) -> float | None:
    """Items per second the rate limits allow for ``model`` (its own entry and ``"*"``),
    each item taking ``avg_tokens`` input tokens and ``avg_usd`` estimated dollars (the
    limiter paces dollars by each job's estimated maximum); None when nothing limits it."""
    entries: list[ModelQuota] = []
    for name in (model, ALL_MODELS):
        quota = settings.rate_limits.get(name) if name else None
        if quota is not None:
            entries.append(quota)
    rates: list[float] = []
    for quota in entries:
        window = quota.window_s or settings.rate_window_s
        if quota.rpm is not None:
            rates.append(quota.rpm / window)
        if quota.tpm is not None and avg_tokens:
            rates.append(quota.tpm / window / avg_tokens)
        if quota.usd is not None and avg_usd:
            usd_window = quota.window_s or DEFAULT_USD_WINDOW_S
            rates.append(float(quota.usd) / usd_window / avg_usd)
    return min(rates) if rates else None


@dataclass(frozen=True)
class Totals:
    """The progress rows summed up, by status."""

    counts: StatusCounts
    tokens: TokenTotals
    cost_nusd: int
    recent: int  # jobs a worker ran that ended in the window
    first_started: datetime | None  # when the first job a worker ran started

    @property
    def remaining(self) -> int:
        return self.counts.queued + self.counts.running

    @property
    def done(self) -> int:
        return sum(getattr(self.counts, status) for status in _ENDED)


def totals(rows: Sequence[ProgressRow]) -> Totals:
    """Counts, token and cost sums of the latest jobs (items whose job is gone: expired), and
    the measured rate's figures: only jobs a worker ran (not cache hits, not cancelled while
    queued)."""
    counts: dict[str, int] = {}
    prompt = candidates = thoughts = total = cost = recent = 0
    first: datetime | None = None
    for row in rows:
        status = row.status or EXPIRED
        counts[status] = counts.get(status, 0) + row.count
        prompt += row.prompt
        candidates += row.candidates
        thoughts += row.thoughts
        total += row.total
        cost += row.cost_nusd
        recent += row.ran_recent
        if row.first_started is not None and (first is None or row.first_started < first):
            first = row.first_started
    return Totals(
        counts=StatusCounts(**{k: v for k, v in counts.items() if k in StatusCounts.model_fields}),
        tokens=TokenTotals(prompt=prompt, candidates=candidates, thoughts=thoughts, total=total),
        cost_nusd=cost,
        recent=recent,
        first_started=first,
    )


def whole_estimate(batch: Batch) -> CostRange:
    """The whole batch's estimate: the estimates of the items' latest jobs, scaled up to
    ``expected_items`` while fewer were added (nothing to scale from before the first
    item), plus what the jobs re-runs replaced actually cost."""
    low, high = batch.estimate_min_nusd, batch.estimate_max_nusd
    expected, added = batch.expected_items, batch.item_count
    if expected is not None and 0 < added < expected:
        # Integer arithmetic: nano-dollars stay exact; rounded up like a reservation.
        low = -(-low * expected // added)
        high = -(-high * expected // added)
    spent = batch.prior_cost_nusd
    return CostRange(min=from_nano(low + spent), max=from_nano(high + spent))


def not_added_items(batch: Batch) -> int:
    """Items the batch expects but has not been given yet (0 once closed or cancelled: no
    more can come)."""
    if batch.expected_items is None or batch.state != StoredState.OPEN:
        return 0
    return max(batch.expected_items - batch.item_count, 0)


def progress_of(
    batch: Batch,
    rows: Sequence[ProgressRow],
    settings: Settings,
    *,
    now: datetime,
    model: str | None,
) -> BatchProgress:
    """The batch's progress from its progress rows (read at ``now``); ``model``: the model
    its items run on, for the quota's rate (None: only the "*" entry applies)."""
    found = totals(rows)
    window = float(settings.batch_eta_window_s)
    if found.first_started is not None:
        # A young batch: measure over the time its jobs have been running, not the window.
        window = min(window, max((now - found.first_started).total_seconds(), 0.0))
    added = batch.item_count
    not_added = not_added_items(batch)
    avg_tokens = batch.estimate_input_tokens / added if added else None
    avg_usd = float(from_nano(batch.estimate_max_nusd)) / added if added else None
    rate, eta_s, basis = eta(
        found.remaining + not_added,
        found.recent,
        window,
        quota_rate(settings, model, avg_tokens, avg_usd),
    )
    tokens = found.tokens.model_copy(update={"total": found.tokens.total + batch.prior_tokens})
    return BatchProgress(
        counts=found.counts,
        items=added,
        expected_items=batch.expected_items,
        done=found.done,
        tokens=tokens,
        cost_usd=usd_text(found.cost_nusd + batch.prior_cost_nusd),
        estimate_usd=whole_estimate(batch),
        rate_per_s=rate,
        eta_s=eta_s,
        eta_at=now + timedelta(seconds=eta_s) if eta_s is not None else None,
        eta_basis=basis,
        eta_not_added=not_added,
    )


def lane_progress(found: UserBatchWait | None) -> BatchLaneProgress | None:
    """Where the batch's unfinished items wait in the Gemini Batch lane, as the API shows
    it (None: none of them is in that lane)."""
    if found is None:
        return None
    return BatchLaneProgress(
        gathering=found.gathering,
        in_batches=found.in_batches,
        batches=[GeminiBatchWait(**asdict(wait)) for wait in found.batches],
    )


def batch_public(
    session: Session,
    batch: Batch,
    settings: Settings,
    *,
    with_progress: bool,
    model: str | None = None,
) -> BatchPublic:
    """The batch as the API shows it; with its progress (one query) if asked."""
    progress = None
    if with_progress:
        now = utcnow()
        since = now - timedelta(seconds=settings.batch_eta_window_s)
        rows = progress_rows(session, batch.id, since=since)
        progress = progress_of(batch, rows, settings, now=now, model=model or batch.model)
        if progress.counts.queued or progress.counts.running:
            progress.gemini = lane_progress(user_batch_wait(session, batch.id))
    return BatchPublic(
        id=batch.id,
        name=batch.name,
        state=cast(BatchState, batch.state),
        task=batch.task,
        model=batch.model,
        prompt=batch.prompt,
        labels=batch.labels,
        options=batch.options,
        schema_=batch.response_schema,
        expected_items=batch.expected_items,
        created_at=batch.created_at,
        closed_at=batch.closed_at,
        cancelled_at=batch.cancelled_at,
        item_count=batch.item_count,
        images_received=batch.images_received,
        images_referenced=batch.images_referenced,
        progress=progress,
        webhook_url=batch.callback_url,
        priority=batch.priority,
    )
