"""A batch's progress: counts and sums of its items' jobs, the whole-batch estimate, and the
ETA from the measured rate capped by the rate limits (api/batch_progress.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from visionq.api.batch_progress import eta, progress_of, quota_rate, totals, whole_estimate
from visionq.models.batches import ProgressRow
from visionq.models.ratelimits import ModelQuota
from visionq.models.settings import Settings
from visionq.models.tables import Batch

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _row(status: str, count: int, *, recent: int = 0, cost: int = 0, total: int = 0,
         first: datetime | None = None, cached: int = 0) -> ProgressRow:  # fmt: skip
    """``recent`` jobs a worker ran ended in the window, the first of them started at
    ``first``; ``cached`` more (cache hits) ended in it too, created 100 s before NOW."""
    created = NOW - timedelta(seconds=100) if cached else first
    return ProgressRow(
        status=status, count=count, prompt=total // 2, candidates=total // 4,
        thoughts=total // 4, total=total, cost_nusd=cost, recent=recent + cached,
        first_created=created, ran_recent=recent, first_started=first,
    )  # fmt: skip


def _batch(**values: object) -> Batch:
    fields: dict[str, object] = {
        "id": "b", "tenant": "t", "name": "n", "state": "open", "task": "caption",
        "model": None, "options": {}, "defaults_hash": "h", "expected_items": None,
        "item_count": 0, "estimate_min_nusd": 0, "estimate_max_nusd": 0,
        "estimate_input_tokens": 0, "prior_cost_nusd": 0, "prior_tokens": 0,
        "images_received": 0, "images_referenced": 0,
    }  # fmt: skip
    fields.update(values)
    return Batch(**fields)


def test_the_measured_rate_divides_what_is_left() -> None:
    # 60 ended in the last 30 s: 2 items/s; 100 left: 50 s.
    assert eta(100, 60, 30.0, None) == (2.0, 50.0, "measured")


def test_too_few_ends_measure_nothing() -> None:
    assert eta(100, 9, 30.0, None) == (None, None, "none")
    # ... then the quota alone gives the rate.
    assert eta(100, 9, 30.0, 4.0) == (4.0, 25.0, "quota")


def test_the_quota_caps_the_measured_rate() -> None:
    assert eta(100, 60, 30.0, 1.0) == (1.0, 100.0, "quota")
    assert eta(100, 60, 30.0, 5.0) == (2.0, 50.0, "measured")


def test_nothing_left_is_zero_seconds() -> None:
    assert eta(0, 60, 30.0, None) == (2.0, 0.0, "measured")
    assert eta(0, 0, 30.0, None) == (None, 0.0, "none")


def test_the_quota_rate_is_the_tightest_limit() -> None:
    settings = Settings(
        rate_limits={
            "gemini-x": ModelQuota(rpm=120, tpm=60_000, window_s=60.0),
            "*": ModelQuota(rpm=None, tpm=None, usd=Decimal("6")),
        }
    )
    # rpm: 2/s; tpm: 1000 tokens/s over 1000-token items: 1/s; usd: $6 / 600 s over
    # $0.001 items: 10/s. The tightest: 1/s.
    assert quota_rate(settings, "gemini-x", 1000.0, 0.001) == pytest.approx(1.0)
    # Another model is paced by "*" alone.
    assert quota_rate(settings, "gemini-y", 1000.0, 0.001) == pytest.approx(10.0)
    # A limit needing an average the batch cannot give yet is skipped.
    assert quota_rate(settings, "gemini-x", None, None) == pytest.approx(2.0)
    assert quota_rate(Settings(), "gemini-x", 1000.0, 0.001) is None


def test_the_rpm_window_defaults_to_the_limiter_window() -> None:
    settings = Settings(rate_limits={"*": ModelQuota(rpm=30, tpm=None)}, rate_window_s=10.0)
    assert quota_rate(settings, None, None, None) == pytest.approx(3.0)


def test_totals_sum_the_statuses() -> None:
    found = totals([
        _row("succeeded", 5, recent=4, cost=50, total=400, first=NOW - timedelta(seconds=9)),
        _row("queued", 3, first=NOW - timedelta(seconds=10)),
        _row("expired", 2),
        _row("failed", 1, recent=1, cost=7, total=40),
    ])  # fmt: skip
    assert found.counts.model_dump() == {
        "queued": 3, "running": 0, "succeeded": 5, "failed": 1, "cancelled": 0, "expired": 2,
    }  # fmt: skip
    assert (found.remaining, found.done, found.recent, found.cost_nusd) == (3, 8, 5, 57)
    assert found.tokens.total == 440
    assert found.first_started == NOW - timedelta(seconds=10)


def test_the_whole_estimate_is_extrapolated_to_the_expected_items() -> None:
    batch = _batch(item_count=10, expected_items=40, estimate_min_nusd=1000, estimate_max_nusd=3001)
    cost = whole_estimate(batch)
    assert (cost.min, cost.max) == (Decimal("0.000004"), Decimal("0.000012004"))
    # Once every expected item is added (or none is expected), the sum is the estimate.
    full = whole_estimate(_batch(item_count=40, expected_items=40, estimate_max_nusd=3001))
    assert full.max == Decimal("0.000003001")
    assert whole_estimate(_batch(item_count=0, expected_items=40)).max == 0


def test_the_whole_estimate_adds_what_replaced_jobs_cost_unscaled() -> None:
    """After a re-run the counters hold the latest jobs' estimates; the replaced jobs'
    actual cost is added to both bounds as it is (it is spent, not estimated)."""
    batch = _batch(
        item_count=10, expected_items=20, estimate_min_nusd=1000, estimate_max_nusd=3000,
        prior_cost_nusd=500,
    )  # fmt: skip
    cost = whole_estimate(batch)
    assert (cost.min, cost.max) == (Decimal("0.0000025"), Decimal("0.0000065"))


def test_progress_counts_cost_with_reruns_and_an_eta() -> None:
    batch = _batch(item_count=30, prior_cost_nusd=1_000_000_000, prior_tokens=60)
    rows = [
        _row("succeeded", 20, recent=20, cost=500_000_000, total=100,
             first=NOW - timedelta(seconds=100)),
        _row("queued", 10),
    ]  # fmt: skip
    progress = progress_of(batch, rows, Settings(batch_eta_window_s=10.0), now=NOW, model=None)
    assert progress.done == 20 and progress.items == 30
    assert progress.cost_usd == "1.5"
    assert progress.tokens.total == 160
    # 20 ended in the 10 s window: 2/s, 10 left: 5 s.
    assert (progress.rate_per_s, progress.eta_s, progress.eta_basis) == (2.0, 5.0, "measured")
    assert progress.eta_at == NOW + timedelta(seconds=5)


def test_a_young_batch_measures_over_its_age() -> None:
    # 12 ended, the batch's first job 4 s old: 3/s, not 12 over the whole 300 s window.
    rows = [_row("succeeded", 12, recent=12, first=NOW - timedelta(seconds=4)), _row("queued", 6)]
    progress = progress_of(_batch(item_count=18), rows, Settings(), now=NOW, model=None)
    assert (progress.rate_per_s, progress.eta_s) == (3.0, 2.0)


def test_cache_hits_are_not_part_of_the_measured_rate() -> None:
    # 60 cache hits ended at once, 20 run jobs ended over the 10 s since the first started:
    # 2/s (not 8/s), and the 40 queued take 20 s.
    rows = [
        _row("succeeded", 80, recent=20, cached=60, first=NOW - timedelta(seconds=10)),
        _row("queued", 40),
    ]
    progress = progress_of(_batch(item_count=120), rows, Settings(), now=NOW, model=None)
    assert (progress.rate_per_s, progress.eta_s, progress.eta_basis) == (2.0, 20.0, "measured")
    # Only cache hits ended (and jobs cancelled while queued, which never ran): no rate yet.
    rows = [_row("succeeded", 60, cached=60), _row("cancelled", 44), _row("running", 16)]
    progress = progress_of(_batch(item_count=120), rows, Settings(), now=NOW, model=None)
    assert (progress.rate_per_s, progress.eta_s, progress.eta_basis) == (None, None, "none")


def test_the_items_not_added_yet_are_work_left() -> None:
    rows = [_row("succeeded", 20, recent=20, first=NOW - timedelta(seconds=10)), _row("queued", 10)]
    # 30 of 100 expected added: 10 queued + 70 to come at 2/s.
    batch = _batch(item_count=30, expected_items=100)
    progress = progress_of(batch, rows, Settings(), now=NOW, model=None)
    assert (progress.eta_s, progress.eta_not_added) == (40.0, 70)
    # A closed batch takes no more items: only the 10 queued are left.
    batch = _batch(item_count=30, expected_items=100, state="closed")
    progress = progress_of(batch, rows, Settings(), now=NOW, model=None)
    assert (progress.eta_s, progress.eta_not_added) == (5.0, 0)
