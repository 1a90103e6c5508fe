"""visionq_estimate_ratio's buckets resolve what it measures: the dashboard's p50/p90
(``histogram_quantile`` over the buckets) read 1.00 for exact estimates, show a small miss
on the right side of 1, and place small cost ratios near their value (review: exact input
estimates showed as p50 0.95, and every cost ratio interpolated inside [0, 0.25])."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import pytest

from visionq.models.metrics import ESTIMATE_RATIO, ESTIMATE_RATIO_BUCKETS


def histogram_quantile(q: float, bounds: Sequence[float], values: Sequence[float]) -> float:
    """Prometheus' histogram_quantile (bucketQuantile, linear inside a bucket) for the
    histogram ``values`` observed into buckets ``bounds`` (+Inf added)."""
    cumulative = [sum(1 for v in values if v <= bound) for bound in bounds]
    cumulative.append(len(values))
    rank = q * len(values)
    index = next(i for i, count in enumerate(cumulative) if count >= rank)
    if index == len(bounds):
        return bounds[-1]
    start = bounds[index - 1] if index else 0.0
    below = cumulative[index - 1] if index else 0
    return start + (bounds[index] - start) * (rank - below) / (cumulative[index] - below)


def test_the_histogram_uses_these_buckets() -> None:
    assert ESTIMATE_RATIO._upper_bounds[:-1] == list(ESTIMATE_RATIO_BUCKETS)


def test_coverage_and_resolution_near_one() -> None:
    bounds = ESTIMATE_RATIO_BUCKETS
    assert bounds[0] <= 0.1 and bounds[-1] >= 10
    near_one = [b for b in bounds if 0.8 <= b <= 1.25]
    assert near_one[0] == 0.8 and near_one[-1] == 1.25
    assert max(b - a for a, b in pairwise(near_one)) <= 0.05 + 1e-9
    assert len(bounds) <= 30, "series = buckets x tasks x models x 2"


@pytest.mark.parametrize("q", [0.5, 0.9])
def test_exact_estimates_read_one(q: float) -> None:
    assert histogram_quantile(q, ESTIMATE_RATIO_BUCKETS, [1.0] * 100) == pytest.approx(1, abs=0.005)


def test_a_small_underestimate_shows_above_one() -> None:
    p50 = histogram_quantile(0.5, ESTIMATE_RATIO_BUCKETS, [1.03] * 100)
    assert 1.02 <= p50 <= 1.05


@pytest.mark.parametrize("ratio", [0.008, 0.046, 0.125])
def test_small_cost_ratios_are_placed_near_their_value(ratio: float) -> None:
    p50 = histogram_quantile(0.5, ESTIMATE_RATIO_BUCKETS, [ratio] * 100)
    assert p50 == pytest.approx(ratio, rel=0.6)
