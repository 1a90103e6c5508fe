"""Cluster gauges computed at scrape: queues, running jobs, batches, webhooks, budgets.

The database and Redis know these numbers, no process does, so no process keeps them:
the API's ``/metrics`` asks for them when scraped (only the API: a worker's port has
process metrics only, so ``sum()`` over targets never counts a gauge twice). Results are
kept ``cache_s`` per API process, so the query set runs at most once per period whatever
the scrape rate. A failing query set is left out of that scrape and counted in
``visionq_metrics_collect_errors_total{source}``; a scrape never fails for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import case, func, select, text

from visionq.models.batch_tables import BATCHES, GEMINI_BATCHES, BatchState
from visionq.models.broker import JOBS_QUEUE, WEBHOOKS_QUEUE
from visionq.models.gemini_batches import GeminiBatchState
from visionq.models.metrics import COLLECT_ERRORS, PREFIX
from visionq.models.tables import BUDGETS, JOBS, JobStatus, utcnow
from visionq.models.webhook_tables import WEBHOOK_DELIVERIES, WEBHOOK_ENDPOINTS, DisabledBy
from visionq.vision.catalogue import ServiceTier

if TYPE_CHECKING:
    import redis
    from prometheus_client.metrics_core import Metric
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

LANES = tuple(tier.value for tier in ServiceTier)
BROKER_QUEUES = (JOBS_QUEUE, WEBHOOKS_QUEUE)
# kombu's Redis transport keeps a queue's prioritised messages in sibling lists.
_KOMBU_PRIORITY_SEP = "\x06\x16"
_KOMBU_PRIORITY_STEPS = (3, 6, 9)
# disabled: by visionq (a day of failures, a 410): an incident to look at; paused: by the
# tenant (`visionq webhooks update ID --disable`), on purpose, no alert.
ENDPOINT_STATES = ("enabled", "failing", "disabled", "paused")
# A cluster query set slower than this is abandoned (PostgreSQL; SQLite waits busy_timeout).
STATEMENT_TIMEOUT_MS = 2000
NUSD_PER_USD = 1_000_000_000


class ClusterCollector:
    """A prometheus-client collector of the cluster gauges (register it on a scrape's
    registry); thread-safe, one per API process."""

    def __init__(
        self,
        engine: Engine,
        redis_client: redis.Redis,
        *,
        cache_s: float,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._redis = redis_client
        self._cache_s = cache_s
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._cached_at: float | None = None
        # Exported at 0 from the start: a counter's first series would be born at 1, which
        # increase() (VisionqClusterGaugesMissing) reads as no increase.
        for source in ("sql", "redis"):
            COLLECT_ERRORS.labels(source)

    def collect(self) -> Iterator[Metric]:
        """The gauges, from the cache when fresher than ``cache_s``."""
        with self._lock:
            at = self._clock()
            if self._cached_at is None or at - self._cached_at >= self._cache_s:
                self._cached = [*self._from_database(), *self._from_redis()]
                self._cached_at = at
            families = list(self._cached)
        yield from families

    def describe(self) -> list[Metric]:
        """Nothing: the registry must not collect (query) to learn the names."""
        return []

    def _from_database(self) -> list[Metric]:
        try:
            with self._engine.connect() as connection, connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
                    )
                now = self._now()
                return [
                    *_jobs(connection, now),
                    *_batches(connection),
                    *_webhooks(connection, now),
                    *_budgets(connection, now),
                ]
        except Exception as exc:  # a scrape never fails: the gauges are left out
            log.warning("metrics: cluster gauges from the database left out (%s)", exc)
            COLLECT_ERRORS.labels("sql").inc()
            return []

    def _from_redis(self) -> list[Metric]:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for queue in BROKER_QUEUES:
                pipe.llen(queue)
                for step in _KOMBU_PRIORITY_STEPS:
                    pipe.llen(f"{queue}{_KOMBU_PRIORITY_SEP}{step}")
            lengths = [int(n) for n in pipe.execute()]
        except Exception as exc:
            log.warning("metrics: broker gauges left out (%s)", exc)
            COLLECT_ERRORS.labels("redis").inc()
            return []
        per_queue = 1 + len(_KOMBU_PRIORITY_STEPS)
        family = GaugeMetricFamily(
            f"{PREFIX}_broker_messages",
            "Messages waiting in the Redis broker's queue (not yet taken by a worker).",
            labels=["queue"],
        )
        for index, queue in enumerate(BROKER_QUEUES):
            family.add_metric([queue], sum(lengths[index * per_queue : (index + 1) * per_queue]))
        return [family]


def _age(now: datetime, oldest: datetime | None) -> float:
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


def _jobs(connection: Connection, now: datetime) -> list[Metric]:
    rows = connection.execute(
        select(
            JOBS.c.lane, JOBS.c.status, func.count(), func.min(JOBS.c.created_at)
        ).where(JOBS.c.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)))
        .group_by(JOBS.c.lane, JOBS.c.status)
    ).all()  # fmt: skip
    found: dict[tuple[str, str], tuple[int, datetime | None]] = {
        (lane, status): (count, oldest) for lane, status, count, oldest in rows
    }
    queued = GaugeMetricFamily(
        f"{PREFIX}_queue_jobs", "Jobs waiting to start, per lane.", labels=["lane"]
    )
    oldest_age = GaugeMetricFamily(
        f"{PREFIX}_queue_oldest_age_seconds",
        "Age of the oldest job waiting to start, per lane (0 when none waits).",
        labels=["lane"],
    )
    running = GaugeMetricFamily(
        f"{PREFIX}_running_jobs",
        "Jobs running (sync lanes) or inside a Gemini batch (batch lane), per lane.",
        labels=["lane"],
    )
    lanes = sorted({*LANES, *(lane for lane, _ in found)})
    for lane in lanes:
        count, oldest = found.get((lane, JobStatus.QUEUED), (0, None))
        queued.add_metric([lane], count)
        oldest_age.add_metric([lane], _age(now, oldest))
        running.add_metric([lane], found.get((lane, JobStatus.RUNNING), (0, None))[0])
    return [queued, oldest_age, running]


def _batches(connection: Connection) -> list[Metric]:
    gemini = _counts(
        connection.execute(
            select(GEMINI_BATCHES.c.state, func.count())
            .where(GEMINI_BATCHES.c.state != GeminiBatchState.CLOSED)
            .group_by(GEMINI_BATCHES.c.state)
        ).all(),
        [state.value for state in GeminiBatchState if state != GeminiBatchState.CLOSED],
    )
    gemini_family = GaugeMetricFamily(
        f"{PREFIX}_gemini_batches",
        "Gemini batches of this deployment not yet closed, by state.",
        labels=["state"],
    )
    for state, count in gemini.items():
        gemini_family.add_metric([state], count)
    users = _counts(
        connection.execute(
            select(BATCHES.c.state, func.count())
            .where(BATCHES.c.ended_at.is_(None))
            .group_by(BATCHES.c.state)
        ).all(),
        [state.value for state in BatchState],
    )
    user_family = GaugeMetricFamily(
        f"{PREFIX}_batches", "User batches not yet ended, by state.", labels=["state"]
    )
    for state, count in users.items():
        user_family.add_metric([state], count)
    return [gemini_family, user_family]


def _counts(rows: Any, states: list[str]) -> dict[str, int]:
    """Every known state (0 when absent) plus any other found."""
    counts = dict.fromkeys(states, 0)
    for state, count in rows:
        counts[str(state)] = int(count)
    return counts


def _webhooks(connection: Connection, now: datetime) -> list[Metric]:
    # The age counts from when a delivery became due (its next attempt's time; a replay
    # makes it due at the replay): one waiting out its backoff, or replayed from last week,
    # is not late. Only a due delivery nobody sends (no worker relays webhooks, every
    # sender busy) or one stuck sending ages.
    due_at = case(
        (WEBHOOK_DELIVERIES.c.next_attempt_at <= now, WEBHOOK_DELIVERIES.c.next_attempt_at)
    )
    pending, oldest = connection.execute(
        select(func.count(), func.min(due_at)).where(
            WEBHOOK_DELIVERIES.c.state.in_(("pending", "sending"))
        )
    ).one()
    pending_family = GaugeMetricFamily(
        f"{PREFIX}_webhook_pending_deliveries",
        "Webhook deliveries not yet succeeded, failed or skipped (pending or sending).",
    )
    pending_family.add_metric([], pending)
    age_family = GaugeMetricFamily(
        f"{PREFIX}_webhook_oldest_pending_age_seconds",
        "Seconds since the oldest pending or sending webhook delivery became due (its next "
        "attempt's time, a replay's time); 0 when none is due.",
    )
    age_family.add_metric([], _age(now, oldest))
    endpoint_state = case(
        (
            WEBHOOK_ENDPOINTS.c.enabled.is_(False)
            & (WEBHOOK_ENDPOINTS.c.disabled_by == DisabledBy.TENANT),
            "paused",
        ),
        (WEBHOOK_ENDPOINTS.c.enabled.is_(False), "disabled"),
        (WEBHOOK_ENDPOINTS.c.failing_since.is_not(None), "failing"),
        else_="enabled",
    )
    endpoints = _counts(
        connection.execute(
            select(endpoint_state, func.count()).group_by(endpoint_state)
        ).all(),
        list(ENDPOINT_STATES),
    )  # fmt: skip
    endpoint_family = GaugeMetricFamily(
        f"{PREFIX}_webhook_endpoints",
        "Webhook endpoints by state (enabled; failing: its last attempts failed; disabled: "
        "by visionq after failures or a 410; paused: disabled by its tenant).",
        labels=["state"],
    )
    for state, count in endpoints.items():
        endpoint_family.add_metric([state], count)
    return [pending_family, age_family, endpoint_family, _failing(connection, now)]


def _failing(connection: Connection, now: datetime) -> Metric:
    # State, not attempt rates: a receiver down for hours is probed on the backoff schedule
    # (5 min, 30 min, 2 h apart), so a low-traffic tenant has long windows without attempts,
    # while failing_since stays set until a success (or visionq disables the endpoint).
    rows = connection.execute(
        select(WEBHOOK_ENDPOINTS.c.tenant, func.min(WEBHOOK_ENDPOINTS.c.failing_since))
        .where(
            WEBHOOK_ENDPOINTS.c.enabled.is_(True), WEBHOOK_ENDPOINTS.c.failing_since.is_not(None)
        )
        .group_by(WEBHOOK_ENDPOINTS.c.tenant)
    ).all()
    family = GaugeMetricFamily(
        f"{PREFIX}_webhook_failing_seconds",
        "Seconds the longest-failing enabled webhook endpoint of a tenant has failed every "
        "attempt (two or more in a row); only tenants with a failing endpoint have a series.",
        labels=["tenant"],
    )
    for tenant, since in rows:
        family.add_metric([tenant], _age(now, since))
    return family


def _budgets(connection: Connection, now: datetime) -> list[Metric]:
    day, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
    rows = connection.execute(
        select(
            BUDGETS.c.tenant, BUDGETS.c.daily_nusd, BUDGETS.c.monthly_nusd, BUDGETS.c.day,
            BUDGETS.c.spent_day_nusd, BUDGETS.c.month, BUDGETS.c.spent_month_nusd,
        ).where((BUDGETS.c.daily_nusd.is_not(None)) | (BUDGETS.c.monthly_nusd.is_not(None)))
    ).all()  # fmt: skip
    spent = GaugeMetricFamily(
        f"{PREFIX}_budget_spent_usd",
        "Spent in the current period of a tenant with a cap (day, month), in US dollars.",
        labels=["tenant", "period"],
    )
    cap = GaugeMetricFamily(
        f"{PREFIX}_budget_cap_usd",
        "A tenant's spending cap per period (day, month), in US dollars.",
        labels=["tenant", "period"],
    )
    for tenant, daily, monthly, row_day, spent_day, row_month, spent_month in rows:
        for period, limit, key, current, used in (
            ("day", daily, row_day, day, spent_day),
            ("month", monthly, row_month, month, spent_month),
        ):
            if limit is None:
                continue
            # The spending of a period that ended counts as zero (as budget_state reads it).
            spent.add_metric([tenant, period], (used if key == current else 0) / NUSD_PER_USD)
            cap.add_metric([tenant, period], limit / NUSD_PER_USD)
    return [spent, cap]
