"""One measured batch on a running stack: submit N caption jobs, wait until every one is
terminal in the database, and account for time, CPU and worker memory."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.perf.images import BenchImage
from bench.perf.load import Background, submit_in_background
from bench.perf.procstats import (
    MB,
    CpuMeter,
    RssSeries,
    machine_is_busy,
    main_thread_cpu_seconds,
)
from bench.perf.report import percentiles
from bench.perf.stack import BenchStack

STALL_S = 180  # no job finishing for this long: the run is declared stuck


@dataclass(frozen=True)
class Batch:
    pool: str
    concurrency: int
    jobs: int
    # Few client threads keep up with the one API process (it is CPU-bound); more than ~7
    # can make the API's connection pool deadlock (see bench/README.md).
    submit_threads: int = 4
    loglevel: str = "INFO"
    stall_s: float = STALL_S


# Pools whose jobs run outside the worker's main thread (in threads or child processes).
SPLIT_POOLS = frozenset({"threads", "prefork"})


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )


def _expected(jobs: int, submit: Background) -> int:
    """Jobs to wait for: all of them while submitting, then those the API accepted."""
    if submit.running:
        return jobs
    if not submit.finished:
        raise RuntimeError("the submitting thread died (see the traceback above)")
    return submit.log.statuses.get(202, 0)


def _wait_terminal(
    stack: BenchStack,
    tenant: str,
    batch: Batch,
    rss: RssSeries,
    label: str,
    submit: Background,
) -> bool:
    """Poll the database every 0.5 s (RSS sampled alongside) until every job the API
    accepted is terminal. True if a pytest run was seen meanwhile (checked every 5 s)."""
    jobs, polls, disturbed = batch.jobs, 0, False
    with progress_bar() as bar:
        sent = bar.add_task(f"{label} submitted", total=jobs, rate="")
        ended = bar.add_task(f"{label} terminal", total=jobs, rate="")
        start = last_change = time.monotonic()
        done = 0
        while done < _expected(jobs, submit):
            time.sleep(0.5)
            now_done = stack.count_terminal(tenant)
            rss.sample(now_done)
            now = time.monotonic()
            if now_done != done:
                done, last_change = now_done, now
            elif now - last_change > batch.stall_s:
                tail = stack.processes["worker"].log_tail(1500)
                raise TimeoutError(
                    f"{label}: stuck at {done}/{jobs} jobs terminal; worker log:\n{tail}"
                )
            stack.check_alive()
            polls += 1
            disturbed = disturbed or (polls % 10 == 1 and machine_is_busy())
            bar.update(sent, completed=submit.log.done)
            bar.update(ended, completed=done, rate=f"{done / (now - start):6.1f}/s")
    return disturbed


def run_batch(
    stack: BenchStack,
    batch: Batch,
    images: Sequence[BenchImage],
    *,
    label: str,
    on_start: Callable[[int], object] | None = None,
) -> dict[str, Any]:
    """Start a worker, run the batch, stop the worker; the figures of the run.

    ``on_start`` gets the worker's pid once submission has begun (to attach a profiler).
    """
    tenant = f"b{int(time.time() * 1000) % 10**10}-{batch.pool}-{batch.concurrency}"
    key = stack.new_key(tenant)
    worker_pid = stack.start_worker(batch.pool, batch.concurrency, loglevel=batch.loglevel)
    try:
        meter = CpuMeter(
            {
                "worker": worker_pid,
                "api": stack.pid("api"),
                "emulator": stack.pid("emulator"),
                "redis": stack.pid("redis"),
                # This process: the load generator's client threads and the DB polling.
                "harness": os.getpid(),
            },
            alone=frozenset({"harness"}),
        )
        rss = RssSeries.of(worker_pid)
        rss.sample(0, force=True)
        meter.start()
        consumer_before = main_thread_cpu_seconds(worker_pid)
        submit = submit_in_background(
            stack.api_url, key, images, jobs=batch.jobs, threads=batch.submit_threads
        )
        if on_start is not None:
            on_start(worker_pid)
        disturbed = _wait_terminal(stack, tenant, batch, rss, label, submit)
        cpu = meter.stop()
        consumer = main_thread_cpu_seconds(worker_pid) - consumer_before
        submit.thread.join()
        time.sleep(1.0)
        rss.sample(batch.jobs, force=True)
    finally:
        stack.stop_worker()
    log = submit.log
    timing = stack.timing(tenant)
    assert timing.last_finished is not None
    wall = timing.last_finished - log.first_send_wall
    succeeded = timing.counts.get("succeeded", 0)
    return {
        "pool": batch.pool,
        "concurrency": batch.concurrency,
        "jobs": batch.jobs,
        "succeeded": succeeded,
        "failed": batch.jobs - succeeded,
        "submit_errors": log.errors,
        "failure_examples": stack.failures(tenant) if succeeded < batch.jobs else [],
        "wall_s": round(wall, 3),
        "jobs_per_s": round(batch.jobs / wall, 2),
        "submit_s": round(log.seconds, 3),
        "submit_jobs_per_s": round(batch.jobs / log.seconds, 1),
        "submit_latency_ms": percentiles(log.latencies),
        "worker_cpu_ms_per_job": round(cpu["worker"] * 1000 / batch.jobs, 3),
        # Celery's consumer thread (messages in, acknowledgements out); the rest of the
        # worker's CPU is the pool running the jobs (SDK call included). Green and solo
        # pools run the jobs on that thread too: no split to report.
        "worker_consumer_cpu_ms_per_job": (
            round(consumer * 1000 / batch.jobs, 3) if batch.pool in SPLIT_POOLS else None
        ),
        "api_cpu_ms_per_job": round(cpu["api"] * 1000 / batch.jobs, 3),
        "emulator_cpu_ms_per_job": round(cpu["emulator"] * 1000 / batch.jobs, 3),
        "redis_cpu_ms_per_job": round(cpu["redis"] * 1000 / batch.jobs, 3),
        "harness_cpu_ms_per_job": round(cpu["harness"] * 1000 / batch.jobs, 3),
        "rss_start_mb": round(rss.samples[0][2] / MB, 1) if rss.samples else 0.0,
        "rss_peak_mb": round(rss.peak_mb, 1),
        "rss_end_mb": round(rss.end_mb, 1),
        "pytest_seen": disturbed,
        "rss_samples": [(round(t, 2), n, round(b / MB, 1)) for t, n, b in rss.samples],
    }
