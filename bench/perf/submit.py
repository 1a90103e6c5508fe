"""`submit`: POST /v1/jobs latency under open-loop load, and the highest rate sustained."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from bench.perf.images import BenchImage, jpeg_of_size
from bench.perf.load import submit_closed, submit_open
from bench.perf.procstats import CpuMeter, machine_is_busy
from bench.perf.report import TARGET_SUBMIT_P99_MS, percentiles, table, write
from bench.perf.stack import BenchStack, add_stack_arguments

console = Console()
STEPS = (25, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 600, 800)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=100, help="offered jobs/s")
    parser.add_argument("--image-kb", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30, help="seconds at --rate")
    parser.add_argument(
        "--find-max",
        action="store_true",
        help="then step the rate up until p99, errors or the rate give way",
    )
    parser.add_argument("--step-duration", type=float, default=15, help="seconds per step")
    parser.add_argument(
        "--with-worker",
        action="store_true",
        help="run a worker too (threads, 64) so jobs also execute",
    )
    add_stack_arguments(parser, api_workers=1)
    parser.add_argument("--p99-ms", type=float, default=TARGET_SUBMIT_P99_MS)


def one_rate(
    stack: BenchStack, image: BenchImage, rate: float, duration_s: float
) -> dict[str, Any]:
    """Open-loop load at ``rate`` on a fresh API process (an overloaded step must not spill
    into the next one), warmed up by 20 requests, with a fresh tenant (its unfinished-job
    count starts at 0)."""
    stack.restart_api()
    key = stack.new_key(f"submit-{int(rate)}-{int(time.time() * 1000) % 10**9}")
    submit_closed(stack.api_url, key, [image], jobs=20, threads=2)
    meter = CpuMeter({"api": stack.pid("api")})
    total = int(rate * duration_s)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"{rate:g} jobs/s", total=total)
        meter.start()
        log = submit_open(
            stack.api_url,
            key,
            image,
            rate=rate,
            duration_s=duration_s,
            tick=lambda done: bar.update(task, completed=done),
        )
        api_cpu = meter.stop()["api"]
    figures: dict[str, Any] = {
        "rate": rate,
        "requests": total,
        "achieved_per_s": round(log.done / log.seconds, 1),
        "errors": log.errors,
        "statuses": {str(k): v for k, v in sorted(log.statuses.items())},
        "latency_ms": percentiles(log.latencies),
        "client_lag_ms": percentiles(log.lags),
        "api_cpu_ms_per_job": round(api_cpu * 1000 / max(1, log.done), 2),
        "api_cpu_share": round(api_cpu / log.seconds, 2),
        "pytest_seen": machine_is_busy(),
    }
    lat = figures["latency_ms"]
    console.print(
        f"{rate:6g}/s offered, {figures['achieved_per_s']:6g}/s done: p50 {lat['p50']:.1f} "
        f"p95 {lat['p95']:.1f} p99 {lat['p99']:.1f} max {lat['max']:.1f} ms, "
        f"{log.errors} errors, API CPU {figures['api_cpu_ms_per_job']} ms/job"
    )
    return figures


def keeps_up(step: dict[str, Any]) -> bool:
    """The API answered the offered rate: >= 95% of it, and no errors."""
    return bool(step["errors"] == 0 and step["achieved_per_s"] >= 0.95 * step["rate"])


def sustained(step: dict[str, Any], p99_ms: float) -> bool:
    """Kept up, with p99 within the target."""
    return keeps_up(step) and step["latency_ms"]["p99"] <= p99_ms


def find_max(
    stack: BenchStack, image: BenchImage, args: argparse.Namespace
) -> tuple[float | None, float | None, list[dict[str, Any]]]:
    """Step the rate up until the API no longer keeps up. Returns the highest rate
    sustained (p99 target met at that step and every lower one), the highest rate the API
    kept up with whatever its latency, and the steps."""
    steps: list[dict[str, Any]] = []
    best: float | None = None
    capacity: float | None = None
    for rate in STEPS:
        step = one_rate(stack, image, rate, args.step_duration)
        step["sustained"] = sustained(step, args.p99_ms)
        steps.append(step)
        if step["sustained"] and all(s["sustained"] for s in steps):
            best = rate
        if not keeps_up(step):
            break
        capacity = rate
    return best, capacity, steps


def markdown(result: dict[str, Any]) -> str:
    fixed = result["fixed"]
    rows = [
        (
            f"{s['rate']:g}",
            s["achieved_per_s"],
            s["latency_ms"]["p50"],
            s["latency_ms"]["p95"],
            s["latency_ms"]["p99"],
            s["latency_ms"]["max"],
            s["errors"],
            s["api_cpu_ms_per_job"],
            s["client_lag_ms"]["p99"],
            {True: "yes", False: "no"}.get(s.get("sustained"), "-"),
        )
        for s in [fixed, *result.get("steps", [])]
    ]
    worker = "with a worker running" if result["with_worker"] else "API only (no worker)"
    text = (
        f"# submit: POST /v1/jobs, {result['image_kb']} KB JPEG, {worker}, "
        f"{result['database']}, {result.get('api_workers', 1)} API process(es)\n\n"
        f"First row: {fixed['rate']:g}/s for {result['duration_s']:g} s; "
        f"then the --find-max steps. Latencies in ms from the scheduled send time.\n\n"
    )
    text += table(
        [
            "offered/s",
            "done/s",
            "p50",
            "p95",
            "p99",
            "max",
            "errors",
            "API CPU ms/job",
            "client lag p99",
            "sustained",
        ],
        rows,
    )
    if "max_rate" in result:
        best, capacity = result["max_rate"], result.get("capacity_rate")
        text += (
            f"\nHighest rate sustained (p99 <= {result['p99_ms']:g} ms at it and every lower step, "
            f"no errors, >= 95% of offered answered): "
            + (f"**{best:g}** jobs/s" if best else f"none (from {STEPS[0]}/s)")
            + "; highest rate answered in full whatever the latency: "
            + (f"**{capacity:g}** jobs/s.\n" if capacity else "none.\n")
        )
    return text


def run(args: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    image = jpeg_of_size(args.image_kb)
    stack = BenchStack(
        latency_ms=300, database=args.database, label="submit-", api_workers=args.api_workers
    )
    try:
        stack.start()
        if args.with_worker:
            stack.start_worker("threads", 64)
        console.print(f"image {image.width}x{image.height}, {len(image.data) // 1024} KB")
        result: dict[str, Any] = {
            "image_kb": len(image.data) // 1024,
            "duration_s": args.duration,
            "with_worker": args.with_worker,
            "database": args.database,
            "api_workers": args.api_workers,
            "p99_ms": args.p99_ms,
            "fixed": one_rate(stack, image, args.rate, args.duration),
        }
        if args.find_max:
            result["max_rate"], result["capacity_rate"], result["steps"] = find_max(
                stack, image, args
            )
    finally:
        stack.stop()
    text = markdown(result)
    write(outdir, "submit", result, text)
    console.print(text, markup=False, highlight=False)
    return result
