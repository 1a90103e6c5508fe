"""`all`: every measurement with the issue's settings, then summary.json and summary.md."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.perf import models, pipeline, soak, submit, throughput
from bench.perf.procstats import code_version, machine_facts, wait_until_quiet
from bench.perf.report import summary_markdown, summary_rows
from bench.perf.stack import add_stack_arguments

console = Console()
PARTS = ("throughput", "pipeline", "submit", "soak", "models")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip",
        default="",
        help=f"comma-separated parts not to run, of {PARTS}; the summary then reuses their "
        "last results from --out, if any",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every job count and duration (0.1 for a quick try)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=20,
        help="py-spy the worker this many seconds in `throughput` (0 = no)",
    )
    add_stack_arguments(parser, api_workers=2)


def _defaults(module: Any, **overrides: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    args = parser.parse_args([])
    for name, value in overrides.items():
        setattr(args, name, value)
    return args


def plan(args: argparse.Namespace) -> dict[str, argparse.Namespace]:
    """The issue's settings for each part, scaled by --scale."""

    def n(value: float) -> int:
        return max(10, int(value * args.scale))

    return {
        "throughput": _defaults(
            throughput,
            jobs=n(2000),
            concurrency=64,
            latency_ms=300,
            pool="threads",
            database=args.database,
            profile=args.profile,
            api_workers=args.api_workers,
        ),
        "pipeline": _defaults(pipeline, jobs=n(1000), concurrency=64, latency_ms=300),
        "submit": _defaults(
            submit,
            rate=100,
            image_kb=200,
            duration=max(5.0, 30 * args.scale),
            find_max=True,
            step_duration=max(5.0, 20 * args.scale),
            database=args.database,
            api_workers=args.api_workers,
        ),
        "soak": _defaults(
            soak, jobs=n(5000), concurrency=64, latency_ms=50, database=args.database
        ),
        "models": _defaults(
            models,
            latencies=[300, 1000],
            concurrencies=[8, 16, 32, 64],
            jobs=n(600),
            database=args.database,
        ),
    }


def run(args: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    results: dict[str, Any] = {"machine": machine_facts(), "scale": args.scale}
    modules = {
        "throughput": throughput,
        "pipeline": pipeline,
        "submit": submit,
        "soak": soak,
        "models": models,
    }
    started = time.monotonic()
    for part, part_args in plan(args).items():
        if part in skip:
            earlier = outdir / f"{part}.json"
            if earlier.exists():
                results[part] = json.loads(earlier.read_text())
            continue
        if not args.no_wait:  # a test run started since would skew this part
            wait_until_quiet(say=console.print)
        console.rule(f"{part}")
        results[part] = modules[part].run(part_args, outdir)
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["code_at_end"] = code_version()
    summary = {"rows": summary_rows(results), **_headline(results)}
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = summary_markdown(results)
    (outdir / "summary.md").write_text(text)
    console.rule("summary")
    console.print(text, markup=False, highlight=False)
    return results


def _headline(results: dict[str, Any]) -> dict[str, Any]:
    """The numbers of summary.json, without the per-run detail (that is in each part's JSON)."""
    out: dict[str, Any] = {
        "machine": results["machine"],
        "code_at_end": results["code_at_end"],
        "duration_s": results["duration_s"],
    }
    if "throughput" in results:
        tp = results["throughput"]
        keys = (
            "jobs_per_s",
            "failed",
            "worker_cpu_ms_per_job",
            "api_cpu_ms_per_job",
            "emulator_cpu_ms_per_job",
            "rss_peak_mb",
            "rss_end_mb",
            "submit_jobs_per_s",
        )
        out["throughput"] = {
            "visionq": {k: tp["visionq"][k] for k in keys},
            "raw": {k: tp["raw"][k] for k in ("jobs_per_s", "cpu_ms_per_job", "errors")},
            "ratio": tp["ratio"],
            "cpu_extra_ms": tp["cpu_extra_ms"],
        }
    if "pipeline" in results:
        out["pipeline"] = {
            k: results["pipeline"][k] for k in ("raw_cpu_ms_per_call", "visionq_own_ms_per_job")
        }
    if "submit" in results:
        sub = results["submit"]
        out["submit"] = {
            "fixed": sub["fixed"],
            "max_rate": sub.get("max_rate"),
            "capacity_rate": sub.get("capacity_rate"),
        }
    if "soak" in results:
        out["soak"] = {
            k: v for k, v in results["soak"].items() if k.startswith("rss_") and k != "rss_samples"
        }
    if "models" in results:
        out["models"] = {"best": results["models"]["best"]}
    return out
