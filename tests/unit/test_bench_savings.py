"""The savings benchmark's workload: 30% repeats of earlier (image, task) pairs, tasks in
the issue's shares, the same list for both runs (seeded)."""

from __future__ import annotations

from collections import Counter

from bench.perf.images import image_pool
from bench.perf.savings import workload


def test_workload_has_the_repeats_and_task_shares() -> None:
    pool = image_pool(4, sides=(256, 320))
    items = workload(pool, 1000, 0.3, seed=20)
    assert len(items) == 1000
    firsts = [item for item in items if not item.repeat]
    repeats = [item for item in items if item.repeat]
    assert len(firsts) == 700 and len(repeats) == 300
    # Each unique copy has its own bytes; a repeat asks the same as one of them.
    assert len({item.image.data for item in firsts}) == 700
    asked = {(item.image.data, item.task) for item in firsts}
    assert all((item.image.data, item.task) in asked for item in repeats)
    assert Counter(item.task for item in firsts) == {"caption": 280, "classify": 210, "detect": 210}
    # Seeded: both runs (and reruns) send the same list in the same order.
    again = workload(pool, 1000, 0.3, seed=20)
    assert [(i.image.name, i.task) for i in again] == [(i.image.name, i.task) for i in items]
