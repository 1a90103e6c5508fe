"""`soak`: a long run; worker RSS over time (a leak shows as growth after warm-up)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.perf.images import describe, image_pool
from bench.perf.plots import rss_plot
from bench.perf.report import TARGET_RSS_GROWTH_MB, table, verdict, write
from bench.perf.runner import Batch, run_batch
from bench.perf.stack import BenchStack, add_stack_arguments

console = Console()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--pool", default="threads")
    add_stack_arguments(parser)
    parser.add_argument(
        "--warmup",
        type=float,
        default=0.1,
        help="fraction of the jobs after which RSS counts as warm",
    )


def slope_mb_per_1000(samples: list[tuple[float, int, float]], after_jobs: int) -> float:
    """Least-squares slope of RSS against jobs done, after warm-up, in MB per 1,000 jobs."""
    points = [(float(n), mb) for _, n, mb in samples if n >= after_jobs]
    if len(points) < 3:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    cov = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return round(cov / var * 1000, 2) if var else 0.0


def run(args: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    pool = image_pool()
    stack = BenchStack(latency_ms=args.latency_ms, database=args.database, label="soak-")
    try:
        stack.start()
        batch = run_batch(stack, Batch(args.pool, args.concurrency, args.jobs), pool, label="soak")
    finally:
        stack.stop()
    samples: list[tuple[float, int, float]] = batch.pop("rss_samples")
    warm_after = int(args.jobs * args.warmup)
    warm = next((mb for _, n, mb in samples if n >= warm_after), batch["rss_end_mb"])
    result: dict[str, Any] = {
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        "latency_ms": args.latency_ms,
        "pool": args.pool,
        "images": describe(pool),
        "warm_after_jobs": warm_after,
        "rss_start_mb": batch["rss_start_mb"],
        "rss_warm_mb": warm,
        "rss_peak_mb": batch["rss_peak_mb"],
        "rss_end_mb": batch["rss_end_mb"],
        "rss_growth_mb": round(batch["rss_end_mb"] - warm, 1),
        "rss_slope_mb_per_1000_jobs": slope_mb_per_1000(samples, warm_after),
        "run": batch,
        "rss_samples": samples,
    }
    rss_plot(
        samples,
        outdir / "soak-rss.png",
        title=f"worker RSS, {args.jobs} jobs, {args.pool} {args.concurrency}, "
        f"{args.latency_ms:g} ms",
    )
    grown = result["rss_growth_mb"] < TARGET_RSS_GROWTH_MB
    rows = [
        ("jobs (failed)", f"{args.jobs} ({batch['failed']})", ""),
        ("throughput, jobs/s", batch["jobs_per_s"], ""),
        ("RSS before the first job, MB", result["rss_start_mb"], ""),
        (f"RSS warm (after {warm_after} jobs), MB", warm, ""),
        ("RSS peak, MB", result["rss_peak_mb"], ""),
        ("RSS end, MB", result["rss_end_mb"], ""),
        (
            "growth end - warm, MB",
            result["rss_growth_mb"],
            f"< {TARGET_RSS_GROWTH_MB:g}: {verdict(grown)}",
        ),
        ("slope after warm-up, MB / 1,000 jobs", result["rss_slope_mb_per_1000_jobs"], ""),
    ]
    text = f"# soak: worker RSS over {args.jobs} jobs\n\n" + table(["", "value", "target"], rows)
    text += "\n![worker RSS](soak-rss.png)\n"
    write(outdir, "soak", result, text)
    console.print(text, markup=False, highlight=False)
    return result
