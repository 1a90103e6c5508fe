"""`python -m bench.perf.fairness`: how long a small tenant waits behind another's backlog,
with fair share (models/fairqueue.py) and without (``VISIONQ_FAIR_SHARE=false``: one FIFO).

Per mode, on a fresh stack (PostgreSQL by default: several worker processes): tenant A
adds ``--a-jobs`` caption jobs to one batch, ``--add-size`` items per call (one small
image, stored once and referenced by sha256 after the first add), while no worker runs;
then ``--workers`` workers of ``--concurrency`` threads start, and once they have started
``--warm-jobs`` of A's jobs, tenant B submits ``--b-jobs`` jobs. Measured from the
database: B's waits (``started_at - created_at``) p50/p95/max, A's jobs still queued when
B submitted (the backlog B arrived behind), and how many of A's jobs started between B's
submit and B's last start. Once B's jobs have ended (or ``--max-wait-s`` passed: B's
waits are then at least that, marked censored) A's batch is cancelled and the stack
stopped. Results: ``bench/results/fairness.json`` and ``.md``. About 6 minutes with the
defaults (most of it A's adds).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from sqlalchemy import func, select

from bench.perf.images import image_pool
from bench.perf.report import percentiles, table, write
from bench.perf.stack import BenchStack
from visionq.models.tables import Job

console = Console()
POLL_S = 0.5


def _client(stack: BenchStack, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )


def submit_backlog(client: httpx.Client, image: bytes, jobs: int, add_size: int) -> str:
    """Tenant A's batch of ``jobs`` items; returns its id."""
    batch = client.post(
        "/v1/batches",
        json={"name": "backlog", "task": "caption", "options": {"cache": False}},
    )
    batch.raise_for_status()
    batch_id = str(batch.json()["id"])
    data = base64.b64encode(image).decode()
    sha256 = hashlib.sha256(image).hexdigest()
    for start in range(0, jobs, add_size):
        # The first item uploads the image; every other one references it by sha256.
        items = [
            {"key": f"a{n}", "images": [{"data": data} if n == 0 else {"sha256": sha256}]}
            for n in range(start, min(start + add_size, jobs))
        ]
        client.post(f"/v1/batches/{batch_id}/items", json={"items": items}).raise_for_status()
        console.print(f"  A: {min(start + add_size, jobs):,} of {jobs:,} jobs added", end="\r")
    console.print()
    return batch_id


def _count(stack: BenchStack, tenant: str, *statuses: str) -> int:
    assert stack.engine is not None
    query = select(func.count()).where(Job.tenant == tenant, Job.status.in_(statuses))
    with stack.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def _started_between(stack: BenchStack, tenant: str, after: datetime, before: datetime) -> int:
    assert stack.engine is not None
    query = select(func.count()).where(
        Job.tenant == tenant, Job.started_at >= after, Job.started_at <= before
    )
    with stack.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def _b_jobs(stack: BenchStack, tenant: str) -> list[tuple[datetime, datetime | None, str]]:
    assert stack.engine is not None
    query = select(Job.created_at, Job.started_at, Job.status).where(Job.tenant == tenant)
    with stack.engine.connect() as connection:
        return [(row[0], row[1], str(row[2])) for row in connection.execute(query)]


def _seconds(start: datetime, end: datetime) -> float:
    """end - start in seconds; naive times (SQLite) are UTC."""
    aware = [t if t.tzinfo is not None else t.replace(tzinfo=UTC) for t in (start, end)]
    return (aware[1] - aware[0]).total_seconds()


def run_mode(args: argparse.Namespace, fair: bool) -> dict[str, Any]:
    """One mode on a fresh stack: its figures."""
    mode = "fair" if fair else "fifo"
    stack = BenchStack(latency_ms=args.latency_ms, database=args.database, label=f"fair-{mode}-")
    stack.env["VISIONQ_FAIR_SHARE"] = "true" if fair else "false"
    stack.env["VISIONQ_BATCH_MAX_ITEMS_PER_ADD"] = str(args.add_size)
    try:
        console.print(f"[bold]{mode}[/]: starting the stack ({args.database})")
        stack.start()
        a_key, b_key = stack.new_key(f"fair-a-{mode}"), stack.new_key(f"fair-b-{mode}")
        a_tenant, b_tenant = f"fair-a-{mode}", f"fair-b-{mode}"
        image = image_pool(1, seed=5, sides=(200, 240))[0].data
        with _client(stack, a_key) as a, _client(stack, b_key) as b:
            added = time.monotonic()
            batch_id = submit_backlog(a, image, args.a_jobs, args.add_size)
            add_s = time.monotonic() - added
            for index in range(args.workers):
                stack.builder.start_worker(name=f"worker{index}", concurrency=args.concurrency)
            warm_until = time.monotonic() + args.max_wait_s
            while _count(stack, a_tenant, "running", "succeeded", "failed") < args.warm_jobs:
                if time.monotonic() > warm_until:
                    raise RuntimeError(
                        f"A's jobs did not start within {args.max_wait_s:g} s: see the "
                        f"workers' logs in {stack.workdir}"
                    )
                stack.check_alive()
                time.sleep(POLL_S)
            backlog = _count(stack, a_tenant, "queued")
            b_ids = []
            for _ in range(args.b_jobs):
                body = {
                    "task": "caption",
                    "images": [{"data": base64.b64encode(image).decode()}],
                    "options": {"cache": False},
                }
                response = b.post("/v1/jobs", json=body)
                response.raise_for_status()
                b_ids.append(response.json()["id"])
            deadline = time.monotonic() + args.max_wait_s
            while (
                _count(stack, b_tenant, "succeeded", "failed", "cancelled") < args.b_jobs
                and time.monotonic() < deadline
            ):
                time.sleep(POLL_S)
            measured_at = datetime.now(UTC)
            a.post(f"/v1/batches/{batch_id}/cancel").raise_for_status()
        rows = _b_jobs(stack, b_tenant)
        censored = [row for row in rows if row[1] is None]
        waits = [_seconds(created, started or measured_at) for created, started, _ in rows]
        first_created = min(row[0] for row in rows)
        # B's wait window: to its last start, or to the end of the measurement (censored).
        end = measured_at if censored else max(row[1] for row in rows if row[1] is not None)
        a_between = _started_between(stack, a_tenant, first_created, end)
        window_s = max(_seconds(first_created, end), 1e-3)
        figures = {
            "mode": mode,
            "a_jobs": args.a_jobs,
            "add_s": round(add_s, 1),
            "backlog_at_b": backlog,
            "b_jobs": args.b_jobs,
            "b_wait_s": {k: v / 1000 for k, v in percentiles(waits).items()},
            "b_not_started": len(censored),
            "a_started_during_b_wait": a_between,
            # A's start rate while B waited, and the backlog over it: what a censored B's
            # wait would be at that rate (it starts after the whole backlog).
            "a_starts_per_s": round(a_between / window_s, 1),
            "backlog_drain_s": round(backlog / max(a_between / window_s, 1e-9), 1),
        }
        console.print(figures)
        return figures
    finally:
        stack.stop()


def markdown(results: dict[str, Any]) -> str:
    """The results as bench/results/fairness.md."""
    text = "# Fair share: a small tenant behind another's backlog\n\n"
    text += (
        f"{results['workers']} workers x {results['concurrency']} threads, emulator latency "
        f"{results['latency_ms']:g} ms, {results['database']}. Tenant A queues "
        f"{results['a_jobs']:,} jobs (one batch, adds of {results['add_size']}), then B "
        f"submits {results['b_jobs']} jobs. B's wait = started_at - created_at.\n\n"
    )
    rows = []
    for run in results["runs"]:
        wait = run["b_wait_s"]
        rows.append((
            run["mode"], run["backlog_at_b"], wait["p50"], wait["p95"], wait["max"],
            run["b_not_started"], run["a_started_during_b_wait"], run["a_starts_per_s"],
            run["backlog_drain_s"],
        ))  # fmt: skip
    text += table(
        ["mode", "A queued when B came", "B wait p50 s", "B wait p95 s", "B wait max s",
         "B not started (censored)", "A starts during B's wait", "A starts/s",
         "backlog / rate s"],
        rows,
    )  # fmt: skip
    text += (
        "\nCensored: B's jobs not started within --max-wait-s (their wait is at least that; "
        "the run stops there to stay short). In submit order B starts after the whole "
        "backlog: about `backlog / rate` seconds at the rate A's jobs started.\n"
    )
    return text


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.perf.fairness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--a-jobs", type=int, default=20_000)
    parser.add_argument("--add-size", type=int, default=500)
    parser.add_argument("--b-jobs", type=int, default=20)
    parser.add_argument("--warm-jobs", type=int, default=200, help="A's starts before B comes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--max-wait-s", type=float, default=120)
    parser.add_argument("--modes", default="fair,fifo")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    runs = [run_mode(args, mode == "fair") for mode in args.modes.split(",")]
    results = {
        "workers": args.workers,
        "concurrency": args.concurrency,
        "latency_ms": args.latency_ms,
        "database": args.database,
        "a_jobs": args.a_jobs,
        "add_size": args.add_size,
        "b_jobs": args.b_jobs,
        "runs": runs,
    }
    path = write(args.out, "fairness", results, markdown(results))
    console.print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
