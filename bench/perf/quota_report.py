"""The result table of `python -m bench.perf.quota` (bench/perf/quota.py)."""

from __future__ import annotations

from typing import Any

from bench.perf.report import table

TARGET_USE = 0.97  # achieved / quota
TARGET_429 = 0.001  # 429s per call


def markdown(results: dict[str, Any]) -> str:
    """quota.md: one row per run, the targets, and what the lower run learned."""
    rows = []
    for run in results["runs"]:
        rows.append(
            (
                run["scenario"],
                run["dimension"],
                f"{run['quota_per_window']:g}",
                f"{run['window_s']:g}",
                run["ceiling"],
                run["achieved_mean"],
                run.get("achieved"),
                run["achieved_max"],
                run["calls"],
                run["rejected_429"],
                "-" if run["rate_429"] is None else f"{run['rate_429']:.2%}",
                run["factor_last"],
                "yes" if run.get("pytest_seen") else "no",
            )
        )
    text = (
        f"# quota: {results['workers']} workers x {results['concurrency']} threads, "
        f"{results['database']}, emulator {results['latency_ms']:g} ms, margin "
        f"{results['margin_s']:g} s\n\n"
        f"Target: achieved/quota >= {TARGET_USE} on the binding quota, 429s <= "
        f"{TARGET_429:.1%} of calls. Achieved = the emulator's sliding-window load over the "
        "quota, sampled every 0.5 s after one warm-up window (mean; max = busiest sample); "
        "admitted = what it admitted over that span over the quota of the span (reads off by "
        "up to one burst: the load comes in one burst per window); for `lower`, of the real "
        "quota before it is raised. 429 rate = 429s / calls sent.\n\n"
    )
    text += table(
        [
            "run",
            "binds",
            "quota/window",
            "window s",
            "ceiling",
            "achieved",
            "admitted",
            "max",
            "calls",
            "429s",
            "429 rate",
            "factor",
            "pytest seen",
        ],
        rows,
    )
    lower = next((r for r in results["runs"] if r["scenario"] == "lower"), None)
    if lower is not None:
        text += (
            f"\nReal quota half the configured: {lower['rejected_429_total']} 429s in all "
            f"({lower['rejected_429']} after the first window); use of the real "
            f"quota before the raise {lower['achieved_of_real_before_raise']} (admitted "
            f"{lower['achieved']}); factor min "
            f"{lower['factor_min']}, last {lower['factor_last']}; use of the raised quota in "
            f"the last window {lower['achieved_of_raised_last_window']}.\n"
        )
    return text
