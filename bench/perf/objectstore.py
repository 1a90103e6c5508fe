"""`python -m bench.perf.objectstore`: throughput with the blobs in S3 (moto) and 1, 2 and 4
worker processes sharing it, against the same runs on a local blob directory.

Each point is a fresh stack (PostgreSQL by default: SQLite locks with several worker
processes) in front of the emulator at ``--latency-ms``; ``--jobs`` caption jobs (no answer
cache, so each runs) are submitted as fast as 8 threads can, over a pool of distinct
images. The defaults make the workers the bottleneck, as Gemini's latency makes them in
production: 1 s per call and 4 threads per worker bound a worker at 4 jobs/s, so 4 workers
(16 jobs/s) stay well below what the API, PostgreSQL, moto and the emulator manage on 2
cores, and the curve shows what adding worker processes buys; 200 jobs per point keep even
the 4-worker point ~12 s long, so start-up does not dominate. The API stores each image
once (content-addressed) and every job's worker reads its input from the store. Measured
from the database: jobs/s from the first job created to the last finished, and each job's
created-to-finished latency (p50/p95). moto runs in this process (a thread), so its CPU is
the bench's, not the workers'. Results go to
``bench/results/objectstore.json`` and ``.md``, with the load average before and after
each point (the machine may be shared); about 5 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import select

from bench.perf.images import image_pool
from bench.perf.load import submit_closed
from bench.perf.report import percentiles, table, write
from bench.perf.stack import BenchStack
from tests.objectstore.servers import MotoServer, make_bucket, s3_settings_env, start_moto
from visionq.models.tables import Job

console = Console()
BUCKET = "visionq-bench"


def _latencies(stack: BenchStack, tenant: str) -> list[float]:
    assert stack.engine is not None
    query = select(Job.created_at, Job.finished_at).where(
        Job.tenant == tenant, Job.finished_at.is_not(None)
    )
    with stack.engine.connect() as connection:
        return [(done - made).total_seconds() for made, done in connection.execute(query)]


def run_point(
    args: argparse.Namespace, store: str, workers: int, moto: MotoServer
) -> dict[str, Any]:
    """One stack, ``workers`` worker processes, the blobs in ``store`` (s3 or local)."""
    stack = BenchStack(
        latency_ms=args.latency_ms, database=args.database, label=f"objectstore-{store}-"
    )
    load_before = os.getloadavg()
    try:
        if store == "s3":
            # A prefix of its own per point: no blob of an earlier run is found stored.
            stack.env.update(s3_settings_env(moto.endpoint_url, BUCKET, uuid.uuid4().hex))
        console.print(f"[bold]{store}, {workers} worker(s)[/]: starting ({args.database})")
        stack.start()
        for index in range(workers):
            stack.builder.start_worker(name=f"worker{index}", concurrency=args.concurrency)
        tenant = f"objectstore-{store}-{workers}"
        key = stack.new_key(tenant)
        images = image_pool(args.images, seed=5, sides=(320, 640))
        log = submit_closed(stack.api_url, key, images, jobs=args.jobs, threads=8)
        deadline = time.monotonic() + args.timeout_s
        while stack.count_terminal(tenant) < log.statuses.get(202, 0):
            stack.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{store}/{workers}: jobs not done in {args.timeout_s} s")
            time.sleep(0.25)
        timing = stack.timing(tenant)
        elapsed = (timing.last_finished or 0.0) - (timing.first_created or 0.0)
        latency = percentiles(_latencies(stack, tenant))
        bound = workers * args.concurrency * 1000 / args.latency_ms
        point = {
            "store": store,
            "workers": workers,
            "jobs": timing.terminal,
            "succeeded": timing.counts.get("succeeded", 0),
            "refused_at_submit": args.jobs - log.statuses.get(202, 0),
            "elapsed_s": round(elapsed, 2),
            "jobs_per_s": round(timing.terminal / elapsed, 2) if elapsed > 0 else None,
            "worker_bound_jobs_per_s": round(bound, 2),
            "latency_ms": latency,
            "failures": stack.failures(tenant),
            "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in os.getloadavg()],
        }
        console.print(point)
        return point
    finally:
        stack.stop()


def markdown(results: dict[str, Any]) -> str:
    """The report: one row per store and worker count."""
    rows = [
        (
            point["store"],
            point["workers"],
            point["jobs"],
            point["succeeded"],
            point["jobs_per_s"],
            point["worker_bound_jobs_per_s"],
            point["latency_ms"]["p50"],
            point["latency_ms"]["p95"],
            f"{point['load_average_before'][0]:.1f} / {point['load_average_after'][0]:.1f}",
        )
        for point in results["points"]
    ]
    code = results.get("code") or {}
    text = (
        "# Throughput with the blobs in an object store\n\n"
        f"`python -m bench.perf.objectstore` at {results['measured_at']} on commit "
        f"{code.get('commit')} ({code.get('uncommitted_files_outside_bench')} uncommitted "
        f"files outside bench/): {results['database']}, emulator latency "
        f"{results['latency_ms']:g} ms, {results['concurrency']} threads per worker, "
        f"{results['jobs_per_point']} caption jobs per point over {results['images']} images. "
        "S3 is moto's server in the bench process. *bound* is workers x threads / latency, "
        "what the workers can do at most; *load* is the 1-minute load average before / after "
        "the point (2 cores, shared with other work).\n\n"
    )
    header = ["store", "workers", "jobs", "succeeded", "jobs/s", "bound", "p50 ms", "p95 ms"]
    text += table([*header, "load"], rows)
    return text


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.perf.objectstore",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workers", default="1,2,4", help="worker processes per point")
    parser.add_argument("--stores", default="s3,local", help="s3 (moto) and/or local")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per point")
    parser.add_argument("--images", type=int, default=40, help="distinct images")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker")
    parser.add_argument("--latency-ms", type=float, default=1000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--timeout-s", type=float, default=180)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    moto = start_moto()
    try:
        make_bucket(moto.endpoint_url, BUCKET)
        points = [
            run_point(args, store, int(workers), moto)
            for store in args.stores.split(",")
            for workers in args.workers.split(",")
        ]
    finally:
        moto.stop()
    results: dict[str, Any] = {
        "database": args.database,
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "jobs_per_point": args.jobs,
        "images": args.images,
        "points": points,
    }
    path = write(args.out, "objectstore", results, "")
    saved: dict[str, Any] = json.loads(path.read_text())  # with write()'s time and commit
    (args.out / "objectstore.md").write_text(markdown(saved))
    console.print(f"wrote {path}")
    return saved


if __name__ == "__main__":
    main()
