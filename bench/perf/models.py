"""`models`: throughput of each worker execution model against concurrency and latency."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.perf.images import image_pool, write_pool
from bench.perf.plots import models_plot
from bench.perf.raw import run_raw
from bench.perf.report import table, write
from bench.perf.runner import Batch, run_batch
from bench.perf.stack import BenchStack, add_stack_arguments

console = Console()
PREFORK_MAX = 32  # a process per slot: more than 32 on 2 cores only adds memory and switching


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latencies", type=_ints, default=[300, 1000], help="ms, comma-separated")
    parser.add_argument("--concurrencies", type=_ints, default=[8, 16, 32, 64])
    parser.add_argument(
        "--models",
        default="prefork,threads,gevent",
        help="comma-separated: prefork, threads, gevent, solo",
    )
    parser.add_argument("--jobs", type=int, default=600)
    add_stack_arguments(parser)


def _plan(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    """(model, concurrency, jobs) for one latency; prefork capped at PREFORK_MAX."""
    return [
        (model, c, args.jobs)
        for model in args.models.split(",")
        for c in args.concurrencies
        if not (model == "prefork" and c > PREFORK_MAX)
    ]


def _one(
    stack: BenchStack, latency: int, model: str, c: int, jobs: int, images: Any
) -> dict[str, Any]:
    label = f"{latency} ms {model} c={c}"
    try:
        run = run_batch(stack, Batch(model, c, jobs, stall_s=180.0), images, label=label)
    except Exception as exc:  # one model failing must not lose the others' numbers
        console.print(f"[red]{label} failed: {_first_clause(str(exc))}[/]")
        stack.stop_worker()
        stack.purge_queue()
        return {
            "latency_ms": latency,
            "pool": model,
            "concurrency": c,
            "jobs": jobs,
            "jobs_per_s": 0.0,
            "error": str(exc)[:500],
        }
    run.pop("rss_samples")
    run["latency_ms"] = latency
    console.print(
        f"{label}: {run['jobs_per_s']} jobs/s, worker {run['worker_cpu_ms_per_job']} "
        f"ms CPU/job, RSS peak {run['rss_peak_mb']} MB, {run['failed']} failed"
    )
    return run


def measure(args: argparse.Namespace) -> dict[str, Any]:
    images = image_pool()
    result: dict[str, Any] = {
        "latencies_ms": args.latencies,
        "jobs": args.jobs,
        "prefork_max": PREFORK_MAX,
        "runs": [],
        "raw": [],
    }
    for latency in args.latencies:
        stack = BenchStack(latency_ms=latency, database=args.database, label=f"models-{latency}-")
        try:
            stack.start()
            manifest = write_pool(images, stack.workdir / "images")
            for model, c, jobs in _plan(args):
                result["runs"].append(_one(stack, latency, model, c, jobs, images))
            for c in args.concurrencies:
                raw = run_raw(
                    stack.emulator_url, stack.gemini_key, manifest, jobs=args.jobs, concurrency=c
                )
                raw["latency_ms"] = latency
                console.print(f"{latency} ms raw c={c}: {raw['jobs_per_s']} calls/s")
                result["raw"].append(raw)
        finally:
            stack.stop()
    result["best"] = best_models(result)
    return result


def best_models(result: dict[str, Any]) -> dict[str, str]:
    """Per latency, the fastest (model, concurrency) and its share of the raw ceiling."""
    best: dict[str, str] = {}
    for latency in result["latencies_ms"]:
        runs = [
            r
            for r in result["runs"]
            if r["latency_ms"] == latency and r["pool"] != "gevent-unpatched"
        ]
        if not runs:
            continue
        top = max(runs, key=lambda r: r["jobs_per_s"])
        raw = next(
            (
                r
                for r in result["raw"]
                if r["latency_ms"] == latency and r["concurrency"] == top["concurrency"]
            ),
            None,
        )
        share = f", {top['jobs_per_s'] / raw['jobs_per_s']:.2f} of raw" if raw else ""
        best[str(latency)] = (
            f"{top['pool']} c={top['concurrency']}: {top['jobs_per_s']} jobs/s{share}"
        )
    return best


def _first_clause(error: str) -> str:
    """``label: stuck at 0/30 jobs terminal; worker log: ...`` -> ``stuck at 0/30 ...``."""
    return error.splitlines()[0].split("; ")[0].split(": ", 1)[-1][:70]


def markdown(result: dict[str, Any]) -> str:
    raw = {(r["latency_ms"], r["concurrency"]): r for r in result["raw"]}
    rows = []
    for run in result["runs"]:
        ceiling = raw.get((run["latency_ms"], run["concurrency"]))
        rows.append(
            (
                run["latency_ms"],
                run["pool"],
                run["concurrency"],
                run["jobs"],
                run["jobs_per_s"],
                ceiling["jobs_per_s"] if ceiling else "-",
                f"{run['jobs_per_s'] / ceiling['jobs_per_s']:.2f}" if ceiling else "-",
                run.get("worker_cpu_ms_per_job", "-"),
                run.get("rss_peak_mb", "-"),
                run.get("failed", "-") if "error" not in run else _first_clause(run["error"]),
            )
        )
    text = (
        f"# models: worker execution models, {result['jobs']} caption jobs per point\n\n"
        f"prefork is capped at concurrency {result['prefork_max']} (one process per slot). "
        "`gevent-unpatched` (in runs before `visionq worker` refused gevent) was that command "
        "without monkey-patching, a short probe. Memory: the worker's RSS; for prefork the "
        "sum of its processes' PSS.\n\n"
    )
    text += table(
        [
            "latency ms",
            "model",
            "concurrency",
            "jobs",
            "jobs/s",
            "raw jobs/s",
            "ratio",
            "worker CPU ms/job",
            "memory peak MB",
            "failed",
        ],
        rows,
    )
    text += "\nBest per latency:\n\n" + "".join(
        f"- {k} ms: {v}\n" for k, v in result["best"].items()
    )
    return text + "\n![throughput against concurrency](models.png)\n"


def run(args: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    result = measure(args)
    outdir.mkdir(parents=True, exist_ok=True)
    models_plot(result, outdir / "models.png")
    text = markdown(result)
    write(outdir, "models", result, text)
    console.print(text, markup=False, highlight=False)
    return result
