"""The throughput report's split of visionq's rate at the end of submission."""

from __future__ import annotations

from bench.perf.throughput import phase_rates


def _run(samples: list[tuple[float, int]], *, submit_s: float, wall_s: float, jobs: int) -> dict:
    return {
        "rss_samples": [(t, done, 0) for t, done in samples],
        "submit_s": submit_s,
        "wall_s": wall_s,
        "jobs": jobs,
    }


def test_rates_before_and_after_the_last_submission_interpolate_between_samples() -> None:
    # 50 jobs/s for 10 s, then 100 jobs/s for 5 s; submission ends at 9 s.
    samples = [(float(t), 50 * t) for t in range(11)] + [(10.0 + t, 500 + 100 * t) for t in (2, 4)]
    run = _run(samples, submit_s=9.0, wall_s=15.0, jobs=1000)
    assert phase_rates(run) == (50.0, round((1000 - 450) / 6, 1))


def test_no_split_when_submission_outlasts_the_samples() -> None:
    run = _run([(0.0, 0), (0.5, 10), (1.0, 20)], submit_s=2.0, wall_s=2.5, jobs=25)
    assert phase_rates(run) is None
