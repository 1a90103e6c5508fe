"""models/metrics_cluster.py: the cluster gauges the API computes at scrape, on a migrated
SQLite database with a stub Redis; caching; a failing source is left out, never raised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.batch_tables import Batch, GeminiBatch
from visionq.models.metrics import CLUSTER_GAUGES
from visionq.models.metrics_cluster import ClusterCollector
from visionq.models.tables import Budget, Job
from visionq.models.webhook_endpoints import update_endpoint
from visionq.models.webhook_record import _disable
from visionq.models.webhook_tables import (
    WEBHOOK_ENDPOINTS,
    DisabledBy,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class StubRedis:
    """LLEN answers from a dict, through a pipeline, as redis-py's."""

    def __init__(self, lengths: dict[str, int], *, fail: bool = False) -> None:
        self.lengths, self.fail, self.pipelines = lengths, fail, 0

    def pipeline(self, transaction: bool = True) -> StubRedis:
        self.pipelines += 1
        self._asked: list[str] = []
        return self

    def llen(self, key: str) -> None:
        self._asked.append(key)

    def execute(self) -> list[int]:
        if self.fail:
            raise ConnectionError("redis is down")
        return [self.lengths.get(key, 0) for key in self._asked]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def seed(sessions: sessionmaker[Session]) -> None:
    def job(n: int, lane: str, status: str, age_s: float) -> Job:
        return Job(
            id=f"job-{n}", tenant="t", task="caption", model="gemini-3.5-flash-lite",
            status=status, lane=lane, created_at=NOW - timedelta(seconds=age_s),
        )  # fmt: skip

    with sessions.begin() as session:
        session.add_all([
            job(1, "standard", "queued", 30), job(2, "standard", "queued", 90),
            job(3, "standard", "running", 500), job(4, "batch", "queued", 7200),
            job(5, "batch", "running", 100), job(6, "flex", "succeeded", 9000),
        ])  # fmt: skip
        session.add_all([
            GeminiBatch(id=f"gb-{n}", identity="i", model="m", state=state, input_mode="inline",
                        job_count=1)
            for n, state in enumerate(["running", "running", "pending", "closed"])
        ])  # fmt: skip
        session.add_all([
            Batch(id=f"b-{n}", tenant="t", name=f"b{n}", task="caption", defaults_hash="h",
                  state=state, ended_at=ended)
            for n, (state, ended) in enumerate(
                [("open", None), ("closed", None), ("closed", NOW), ("cancelled", NOW)]
            )
        ])  # fmt: skip
        session.add_all([
            WebhookEndpoint(id="e-ok", tenant="t", events=["job.succeeded"], event_mask=1),
            WebhookEndpoint(id="e-failing", tenant="t", events=["job.succeeded"], event_mask=1,
                            failing_since=NOW - timedelta(minutes=20)),
            # Failing for longer, but disabled since: not failing any more.
            WebhookEndpoint(id="e-gone", tenant="u", events=["job.succeeded"], event_mask=1,
                            failing_since=NOW - timedelta(days=1), enabled=False,
                            disabled_by="visionq"),
            WebhookEndpoint(id="e-off", tenant="t", events=["job.succeeded"], event_mask=1),
            WebhookEndpoint(id="e-paused", tenant="t", events=["job.succeeded"], event_mask=1),
        ])  # fmt: skip
        session.flush()
        # Disabled by visionq, with a reason that quotes the tenant's words: who disabled it
        # is the typed disabled_by column, never the reason's wording.
        assert _disable(session, "e-off", "disabled by the tenant's receiver (410)", NOW)
        # Paused by its tenant, through the real call.
        assert update_endpoint(session, "t", "e-paused", enabled=False) is not None
        by = {row.id: row.disabled_by for row in session.execute(select(WEBHOOK_ENDPOINTS))}
        assert (by["e-off"], by["e-paused"]) == (DisabledBy.VISIONQ, DisabledBy.TENANT)
        # (state, seconds since it became due): created two days ago (a replay, or a
        # receiver down since); the one due in 300 s waits out its backoff, not late.
        for n, (state, age_s) in enumerate(
            [("pending", 600), ("sending", 60), ("succeeded", 9000), ("failed", 9000),
             ("pending", -300)]
        ):  # fmt: skip
            session.add(WebhookEvent(id=f"msg_{n}", tenant="t", type="job.succeeded",
                                     subject_id=f"job-{n}", occurred_at=NOW))  # fmt: skip
            session.flush()
            session.add(
                WebhookDelivery(
                    event_id=f"msg_{n}", endpoint_id="e-ok", url="https://hooks.example/",
                    state=state, next_attempt_at=NOW - timedelta(seconds=age_s),
                    window_started_at=NOW - timedelta(seconds=age_s),
                    created_at=NOW - timedelta(days=2),
                )
            )  # fmt: skip
        session.add_all([
            # Day cap of $2 with $1.50 spent today; the month's spending is of last month.
            Budget(tenant="capped", daily_nusd=2_000_000_000, monthly_nusd=50_000_000_000,
                   day="2026-12-05", spent_day_nusd=1_500_000_000, month="2026-11",
                   spent_month_nusd=9_000_000_000),
            Budget(tenant="uncapped", day="2026-12-05", spent_day_nusd=7),
        ])  # fmt: skip


def scrape(collector: ClusterCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def g(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def errors(source: str) -> float:
    return (
        REGISTRY.get_sample_value("visionq_metrics_collect_errors_total", {"source": source}) or 0
    )


def test_every_gauge_from_the_database_and_redis(sessions: sessionmaker[Session]) -> None:
    seed(sessions)
    engine = sessions.kw["bind"]
    stub = StubRedis({"visionq.jobs": 4, "visionq.jobs\x06\x163": 1, "visionq.webhooks": 2})
    values = scrape(ClusterCollector(engine, stub, cache_s=5, now=lambda: NOW))  # type: ignore[arg-type]
    assert {name for name, _ in values} == set(CLUSTER_GAUGES)
    assert values[g("visionq_queue_jobs", lane="standard")] == 2
    assert values[g("visionq_queue_oldest_age_seconds", lane="standard")] == 90
    assert values[g("visionq_queue_jobs", lane="batch")] == 1
    assert values[g("visionq_queue_oldest_age_seconds", lane="batch")] == 7200
    # Every lane has a series (0 when empty), so alerts and panels never see "no data".
    assert values[g("visionq_queue_jobs", lane="priority")] == 0
    assert values[g("visionq_queue_oldest_age_seconds", lane="flex")] == 0
    assert values[g("visionq_running_jobs", lane="standard")] == 1
    assert values[g("visionq_running_jobs", lane="batch")] == 1
    assert values[g("visionq_broker_messages", queue="visionq.jobs")] == 5  # + priority list
    assert values[g("visionq_broker_messages", queue="visionq.webhooks")] == 2
    assert values[g("visionq_gemini_batches", state="running")] == 2
    assert values[g("visionq_gemini_batches", state="pending")] == 1
    assert values[g("visionq_gemini_batches", state="creating")] == 0
    assert g("visionq_gemini_batches", state="closed") not in values
    assert values[g("visionq_batches", state="open")] == 1
    assert values[g("visionq_batches", state="closed")] == 1  # the ended one is not counted
    assert values[g("visionq_batches", state="cancelled")] == 0
    assert values[g("visionq_webhook_pending_deliveries")] == 3
    # From when the oldest became due, not from its creation two days ago (review R10).
    assert values[g("visionq_webhook_oldest_pending_age_seconds")] == 600
    # Disabled by visionq vs paused by the tenant (only the first alerts; review R10).
    for state, count in (("enabled", 1), ("failing", 1), ("disabled", 2), ("paused", 1)):
        assert values[g("visionq_webhook_endpoints", state=state)] == count
    # Per tenant, from the failing state (which persists across the backoff's long gaps
    # between attempts), only for tenants with an enabled failing endpoint (review bug 4).
    assert values[g("visionq_webhook_failing_seconds", tenant="t")] == 1200
    assert g("visionq_webhook_failing_seconds", tenant="u") not in values
    assert values[g("visionq_budget_spent_usd", tenant="capped", period="day")] == 1.5
    assert values[g("visionq_budget_cap_usd", tenant="capped", period="day")] == 2
    assert values[g("visionq_budget_spent_usd", tenant="capped", period="month")] == 0
    assert values[g("visionq_budget_cap_usd", tenant="capped", period="month")] == 50
    assert not any(dict(labels).get("tenant") == "uncapped" for _, labels in values)


def test_enabling_again_clears_who_disabled(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(WebhookEndpoint(id="e", tenant="t", events=["job.succeeded"], event_mask=1))
        session.flush()
        paused = update_endpoint(session, "t", "e", enabled=False)
        assert paused is not None and paused.disabled_by == DisabledBy.TENANT
        enabled = update_endpoint(session, "t", "e", enabled=True)
        assert enabled is not None and enabled.disabled_by is None


def test_an_empty_database_still_has_every_series(sessions: sessionmaker[Session]) -> None:
    engine = sessions.kw["bind"]
    values = scrape(ClusterCollector(engine, StubRedis({}), cache_s=5))  # type: ignore[arg-type]
    assert values[g("visionq_queue_oldest_age_seconds", lane="standard")] == 0
    assert values[g("visionq_webhook_oldest_pending_age_seconds")] == 0
    assert values[g("visionq_broker_messages", queue="visionq.webhooks")] == 0


def test_results_are_cached_per_process(sessions: sessionmaker[Session]) -> None:
    engine = sessions.kw["bind"]
    clock, stub = Clock(), StubRedis({"visionq.jobs": 1})
    collector = ClusterCollector(engine, stub, cache_s=5, clock=clock)  # type: ignore[arg-type]
    assert scrape(collector)[g("visionq_broker_messages", queue="visionq.jobs")] == 1
    stub.lengths["visionq.jobs"] = 9
    clock.t = 4.9
    assert scrape(collector)[g("visionq_broker_messages", queue="visionq.jobs")] == 1
    assert stub.pipelines == 1
    clock.t = 5.0
    assert scrape(collector)[g("visionq_broker_messages", queue="visionq.jobs")] == 9
    assert stub.pipelines == 2


@pytest.mark.parametrize("broken", ["sql", "redis"])
def test_a_failing_source_is_left_out_and_counted(
    sessions: sessionmaker[Session], broken: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine: Any = sessions.kw["bind"]
    if broken == "sql":

        def refuse(*_: Any, **__: Any) -> Any:
            raise RuntimeError("database is down")

        monkeypatch.setattr(engine, "connect", refuse)
    stub = StubRedis({"visionq.jobs": 3}, fail=broken == "redis")
    before = errors(broken)
    values = scrape(ClusterCollector(engine, stub, cache_s=0))  # type: ignore[arg-type]
    assert errors(broken) == before + 1
    names = {name for name, _ in values}
    if broken == "sql":
        assert names == {"visionq_broker_messages"}
    else:
        assert "visionq_broker_messages" not in names and "visionq_queue_jobs" in names
