"""`pipeline`: what visionq itself adds to a Gemini call, without Celery, API or queue.

In one process, against the emulator: the same N caption requests sent straight through
the SDK (as `raw` does), from threads and then through its asyncio client (what an asyncio
client inside the task would cost per call), then N queued caption jobs run by
``worker.pipeline.run_job`` from a thread pool of the same size (claim, build the request,
the SDK call, parse, price, store). All are timed with this process's CPU clock; the
difference between run_job and the threads' SDK call is visionq's own work per job: its
database transactions, blob read, request building and answer handling.
Together with `throughput` (the whole worker process, Celery included) it splits the
worker's CPU per job into the SDK call, visionq's pipeline and Celery.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.perf.images import BenchImage, describe, image_pool
from bench.perf.raw import MODEL, measure_aio
from bench.perf.raw import measure as measure_raw
from bench.perf.report import table, write
from bench.perf.stack import BenchStack
from visionq.models.budgets import reserve
from visionq.models.jobs import NewInput, create_job
from visionq.models.settings import Settings
from visionq.worker.context import WorkerContext
from visionq.worker.pipeline import run_job

console = Console()
WARMUP = 20  # calls/jobs before the clock starts: connections, caches, lazy imports


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=300)


def _queue_jobs(context: WorkerContext, images: list[BenchImage], count: int) -> list[str]:
    """``count`` queued caption jobs (image ``i % len(images)``), as the API leaves them."""
    inputs = [
        NewInput(context.blobs.put(i.data), i.mime_type, i.width, i.height, len(i.data))
        for i in images
    ]
    with context.sessions.begin() as session:
        reserve(session, tenant="bench", amount_nusd=0)
        return [
            create_job(
                session, tenant="bench", task="caption", model=MODEL, prompt=None,
                labels=None, options={"cache": False}, inputs=[inputs[n % len(inputs)]],
            ).id
            for n in range(count)
        ]  # fmt: skip


def _cpu_per_item(work: Callable[[int], str], count: int, concurrency: int) -> dict[str, Any]:
    """Run ``work(0..count-1)`` from ``concurrency`` threads: CPU ms per item, outcomes."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = list(pool.map(work, range(count)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "count": count,
        "cpu_ms_per_item": round(cpu * 1000 / count, 3),
        "items_per_s": round(count / wall, 1),
        "outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))},
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    images = image_pool()
    stack = BenchStack(latency_ms=args.latency_ms, label="pipeline-")
    try:
        stack.start()
        settings = Settings(**_settings_from(stack.env), GEMINI_API_KEY=stack.gemini_key)
        context = WorkerContext.build(settings)
        try:
            job_ids = _queue_jobs(context, images, args.jobs + WARMUP)
            sent = [(image.data, image.mime_type) for image in images]
            raw, aio = (
                _sdk_calls(measure, label, stack, sent, args)
                for measure, label in ((measure_raw, "raw SDK, threads"),
                                       (measure_aio, "raw SDK, client.aio"))
            )  # fmt: skip
            for job_id in job_ids[:WARMUP]:
                run_job(context, job_id)
            console.print(f"run_job: {args.jobs} jobs from {args.concurrency} threads")
            todo = job_ids[WARMUP:]
            pipeline = _cpu_per_item(lambda n: run_job(context, todo[n]), args.jobs,
                                     args.concurrency)  # fmt: skip
        finally:
            context.close()
    finally:
        stack.stop()
    return {
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        "latency_ms": args.latency_ms,
        "images": describe(images),
        "raw_cpu_ms_per_call": raw["cpu_ms_per_job"],
        "raw_errors": raw["errors"],
        # The SDK's asyncio client on one event loop: an asyncio client inside the task.
        "raw_aio_cpu_ms_per_call": aio["cpu_ms_per_job"],
        "raw_aio_errors": aio["errors"],
        "pipeline": pipeline,
        "visionq_own_ms_per_job": round(pipeline["cpu_ms_per_item"] - raw["cpu_ms_per_job"], 3),
    }


def _sdk_calls(
    measure: Callable[..., dict[str, Any]],
    label: str,
    stack: BenchStack,
    sent: list[tuple[bytes, str]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """``measure``'s result for ``args.jobs`` calls, after ``WARMUP`` calls not counted."""
    measure(stack.emulator_url, stack.gemini_key, sent, jobs=WARMUP, concurrency=8)
    console.print(f"{label}: {args.jobs} calls, {args.concurrency} at a time")
    return measure(
        stack.emulator_url, stack.gemini_key, sent, jobs=args.jobs, concurrency=args.concurrency
    )


def _settings_from(env: dict[str, str]) -> dict[str, Any]:
    """The stack's VISIONQ_* variables as Settings fields."""
    prefix = "VISIONQ_"
    return {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}


def markdown(result: dict[str, Any]) -> str:
    pipeline = result["pipeline"]
    text = (
        f"# pipeline: visionq's own work per job, in process (no Celery, API or queue)\n\n"
        f"{result['jobs']} caption jobs, {result['concurrency']} threads, emulator "
        f"{result['latency_ms']:g} ms, SQLite. CPU of this one process per call or job.\n\n"
    )
    return text + table(
        ["", "CPU ms per call / job", "outcomes"],
        [
            ("the request straight through the SDK", result["raw_cpu_ms_per_call"],
             f"{result['raw_errors']} errors"),
            ("the same through the SDK's asyncio client (client.aio, one event loop)",
             result.get("raw_aio_cpu_ms_per_call", "-"),
             f"{result.get('raw_aio_errors', '-')} errors"),
            ("run_job (claim, request, SDK call, parse, price, store)",
             pipeline["cpu_ms_per_item"], pipeline["outcomes"]),
            ("visionq's own work (the difference)", result["visionq_own_ms_per_job"], ""),
        ],
    )  # fmt: skip


def run(args: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    result = measure(args)
    text = markdown(result)
    write(outdir, "pipeline", result, text)
    console.print(text, markup=False, highlight=False)
    return result
