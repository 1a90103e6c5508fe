"""`throughput`: visionq end to end against the raw SDK ceiling, in the same run."""

from __future__ import annotations

import argparse
from itertools import pairwise
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.perf.images import describe, image_pool, write_pool
from bench.perf.procstats import CpuMeter
from bench.perf.profile import Profiler
from bench.perf.raw import run_raw
from bench.perf.report import TARGET_CPU_EXTRA_MS, TARGET_RATIO, table, verdict, write
from bench.perf.runner import Batch, run_batch
from bench.perf.stack import BenchStack, add_stack_arguments

console = Console()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=300)
    parser.add_argument(
        "--pool", default="threads", help="threads, prefork, gevent (patched launcher), solo"
    )
    add_stack_arguments(parser, api_workers=1)
    parser.add_argument("--submit-threads", type=int, default=4)
    parser.add_argument("--worker-loglevel", default="INFO")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="SECONDS",
        help="record the worker with py-spy for this long (0 = no)",
    )


def measure(args: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    pool = image_pool()
    profiler = Profiler(outdir, duration_s=args.profile) if args.profile else None
    if profiler is not None and not profiler.available():
        console.print("[yellow]py-spy not found (pip install py-spy): no profile[/]")
        profiler = None
    batch = Batch(args.pool, args.concurrency, args.jobs, args.submit_threads, args.worker_loglevel)
    stack = BenchStack(
        latency_ms=args.latency_ms,
        database=args.database,
        label="throughput-",
        api_workers=args.api_workers,
    )
    try:
        console.print(f"starting the stack ({args.database}, emulator {args.latency_ms:g} ms)")
        stack.start()
        manifest = write_pool(pool, stack.workdir / "images")
        visionq = run_batch(stack, batch, pool, label="visionq")
        console.print(f"raw SDK ceiling: {args.jobs} calls from {args.concurrency} threads")
        emulator = CpuMeter({"emulator": stack.pid("emulator")})
        emulator.start()
        raw = run_raw(
            stack.emulator_url,
            stack.gemini_key,
            manifest,
            jobs=args.jobs,
            concurrency=args.concurrency,
        )
        raw["emulator_cpu_ms_per_job"] = round(emulator.stop()["emulator"] * 1000 / args.jobs, 3)
        if profiler is not None:
            # A separate batch, long enough to cover the recording: py-spy's own CPU must
            # not count in the measured one.
            console.print(f"profiling the worker for {args.profile} s (a separate batch)")
            jobs = int(visionq["jobs_per_s"] * (profiler.delay_s + args.profile + 5))
            profiled = Batch(
                args.pool,
                args.concurrency,
                max(200, jobs),
                args.submit_threads,
                args.worker_loglevel,
            )
            run_batch(stack, profiled, pool, label="profiled", on_start=profiler.attach)
            profiler.wait()
    finally:
        stack.stop()
    result: dict[str, Any] = {
        "database": args.database,
        "api_workers": args.api_workers,
        "pool": args.pool,
        "concurrency": args.concurrency,
        "latency_ms": args.latency_ms,
        "images": describe(pool),
        "visionq": visionq,
        "raw": raw,
        "ratio": round(visionq["jobs_per_s"] / raw["jobs_per_s"], 3),
        "cpu_extra_ms": round(visionq["worker_cpu_ms_per_job"] - raw["cpu_ms_per_job"], 3),
        "ideal_jobs_per_s": round(args.concurrency / (args.latency_ms / 1000), 1)
        if args.latency_ms
        else None,
    }
    if profiler is not None:
        result["profile"] = profiler.hottest()
    return result


def phase_rates(visionq: dict[str, Any]) -> tuple[float, float] | None:
    """visionq's jobs/s while jobs were being submitted, and after the last submission.

    From the run's samples of jobs done (every 0.5 s, timed from the first submission),
    interpolated at the moment submission ended. While submitting, the API and the load
    generator share the machine with the worker and the emulator; after it, they do not.
    """
    samples = [(t, done) for t, done, _ in visionq.get("rss_samples", [])]
    submit_s, wall_s, jobs = visionq["submit_s"], visionq["wall_s"], visionq["jobs"]
    for (t0, done0), (t1, done1) in pairwise(samples):
        if t0 <= submit_s <= t1 < wall_s and t1 > t0:
            done = done0 + (done1 - done0) * (submit_s - t0) / (t1 - t0)
            return round(done / submit_s, 1), round((jobs - done) / (wall_s - submit_s), 1)
    return None


def markdown(result: dict[str, Any]) -> str:
    vq, raw = result["visionq"], result["raw"]
    phases = phase_rates(vq)
    rows = [
        ("jobs / calls", vq["jobs"], raw["jobs"]),
        ("failed", vq["failed"], raw["errors"]),
        ("wall time, s", vq["wall_s"], raw["wall_s"]),
        ("throughput, jobs/s", vq["jobs_per_s"], raw["jobs_per_s"]),
        (
            "of which while submitting / after the last submission, jobs/s",
            f"{phases[0]} / {phases[1]}" if phases else "-",
            "-",
        ),
        (
            "CPU per job, ms (worker / raw SDK process)",
            vq["worker_cpu_ms_per_job"],
            raw["cpu_ms_per_job"],
        ),
        (
            "of which Celery's consumer thread (messages in, acks out), ms",
            "-" if (consumer := vq.get("worker_consumer_cpu_ms_per_job")) is None else consumer,
            "-",
        ),
        ("API CPU per job, ms", vq["api_cpu_ms_per_job"], "-"),
        ("emulator CPU per job, ms", vq["emulator_cpu_ms_per_job"], raw["emulator_cpu_ms_per_job"]),
        ("Redis CPU per job, ms", vq.get("redis_cpu_ms_per_job", "-"), "-"),
        (
            "harness CPU per job, ms (load generator, polling)",
            vq.get("harness_cpu_ms_per_job", "-"),
            "-",
        ),
        ("submit time, s (closed loop)", vq["submit_s"], "-"),
        (
            "submit rate, jobs/s / p99 latency, ms",
            f"{vq['submit_jobs_per_s']} / {vq['submit_latency_ms']['p99']}",
            "-",
        ),
        (
            "worker RSS start / peak / end, MB",
            f"{vq['rss_start_mb']:.0f} / {vq['rss_peak_mb']:.0f} / {vq['rss_end_mb']:.0f}",
            "-",
        ),
    ]
    head = (
        f"# throughput: {result['pool']} pool, concurrency {result['concurrency']}, emulator "
        f"{result['latency_ms']:g} ms, {result['database']}, "
        f"{result.get('api_workers', 1)} API process(es)\n\n"
        f"Ideal (concurrency / latency): {result['ideal_jobs_per_s']} jobs/s.\n\n"
    )
    checks = table(
        ["check", "value", "target", "result"],
        [
            (
                "visionq / raw",
                result["ratio"],
                f">= {TARGET_RATIO}",
                verdict(result["ratio"] >= TARGET_RATIO),
            ),
            (
                "worker CPU above raw, ms/job",
                result["cpu_extra_ms"],
                f"<= {TARGET_CPU_EXTRA_MS:g}",
                verdict(result["cpu_extra_ms"] <= TARGET_CPU_EXTRA_MS),
            ),
        ],
    )
    text = head + table(["", "visionq", "raw SDK"], rows) + "\n" + checks
    if result.get("profile"):
        text += "\n## Worker profile: py-spy, on-CPU samples (GIL holder), share of samples\n\n"
        text += "Flame graph of all busy threads: worker-profile.svg.\n\n"
        profile = result["profile"]
        text += table(["function (self)", "%"], profile["self_pct"])
        text += "\n" + table(["package (self)", "%"], profile["package_pct"])
        text += "\n" + table(
            ["visionq function (inclusive)", "%"], profile["visionq_inclusive_pct"]
        )
    return text


def run(args: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    result = measure(args, outdir)
    text = markdown(result)
    write(outdir, "throughput", result, text)
    console.print(text, markup=False, highlight=False)
    return result
