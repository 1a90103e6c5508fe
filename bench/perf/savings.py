"""`savings`: what 1,000 images cost sent naively against visionq's `auto` tier (issue 20).

One stack (SQLite), one emulator, so both runs are billed at the same prices (the
emulator's catalogue): ``--latency-ms 300 --flex-latency-ms 2000 --batch-pending-s 5
--batch-lines-per-s 20``. The workload, the same for both: 1,000 images, 700 unique (copies
of a pool of photo-like JPEGs and flat PNG scenes, sides 1600..3000 px, each copy its own
bytes) and 300 repeats of an earlier (image, task) pair, tasks caption 40% / classify 30% /
detect 30%, in a seeded shuffle.

1. naive: ``tier=standard, cache=false``, full resolution, POSTed as fast as the API
   takes them (8 threads);
2. warm-up: 100 ``tier=batch`` jobs of other images, so that `auto` has a measured batch
   turnaround (with none, the 24 h prior keeps it off batch for deadlines under 36 h);
   their cost is reported apart, not in the ratio;
3. visionq: ``tier=auto, deadline_s=7200, cache=true, economy=true``, same 1,000 images.

Measured per run: cost per 1,000 images from visionq's recorded costs and from the
emulator's billed USD (they must agree within 1e-6), by served tier; the makespan (first
POST to the last job's end); jobs past their deadline (must be 0); tokens; cache hits. The
run ends with `visionq cost report --by tier` and `--by tenant` on the bench's database.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from sqlalchemy import select

from bench.perf.batch import unique_images
from bench.perf.images import BenchImage, describe, image_pool
from bench.perf.procstats import machine_facts, machine_is_busy
from bench.perf.report import table, verdict, write
from bench.perf.stack import BenchStack
from visionq.cli.processes import visionq_command
from visionq.models.tables import JOBS, TIER_TURNAROUNDS
from visionq.vision.catalogue import load_catalogue
from visionq.vision.costing import from_nano

console = Console()
TARGET_RATIO = 0.45  # visionq's cost / naive's, per 1,000 images (issue 20)
TASKS = (("caption", 0.4), ("classify", 0.3), ("detect", 0.3))
LABELS = ["circle", "rectangle", "triangle", "ellipse", "photo", "diagram"]
EMULATOR_FLAGS = (
    "--flex-latency-ms", "2000", "--batch-pending-s", "5", "--batch-lines-per-s", "20",
)  # fmt: skip
# The lane ticks every 5 s (30 s by default) and sends a batch once 100 jobs wait or the
# oldest waited 10 s: the same rules, a shorter run.
LANE_SETTINGS = {"VISIONQ_BATCH_POLL_S": "5", "VISIONQ_BATCH_GATHER_S": "10"}
NAIVE = {"tier": "standard", "cache": False}
WARMUP = {"tier": "batch", "cache": False}
VISIONQ = {"tier": "auto", "deadline_s": 7200, "cache": True, "economy": True}
# The API reads measured turnarounds through a cache of this many seconds (api/tiers.py).
TURNAROUND_CACHE_S = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=1000, help="images per run")
    parser.add_argument("--repeats", type=float, default=0.3, help="share of repeated images")
    parser.add_argument("--warmup", type=int, default=100, help="tier=batch warm-up jobs")
    parser.add_argument("--threads", type=int, default=32, help="worker threads")
    parser.add_argument("--seed", type=int, default=20)


@dataclass(frozen=True)
class Item:
    image: BenchImage
    task: str
    repeat: bool


def workload(pool: list[BenchImage], total: int, repeat_share: float, seed: int) -> list[Item]:
    """``total`` items: unique copies with tasks in the TASKS shares, plus repeats of earlier
    (image, task) pairs, shuffled with ``seed``."""
    rng = random.Random(seed)
    repeats = round(total * repeat_share)
    unique = total - repeats
    tasks = [task for task, share in TASKS for _ in range(round(unique * share))]
    tasks = (tasks + ["caption"] * unique)[:unique]
    rng.shuffle(tasks)
    firsts = [Item(image, task, False) for image, task in zip(unique_images(pool, 0, unique),
                                                                tasks, strict=True)]  # fmt: skip
    again = [Item(item.image, item.task, True) for item in rng.choices(firsts, k=repeats)]
    items = firsts + again
    rng.shuffle(items)
    return items


def _form(item: Item, options: dict[str, Any]) -> tuple[dict[str, str], list[Any]]:
    data = {"task": item.task, "options": json.dumps(options)}
    if item.task == "classify":
        data["labels"] = json.dumps(LABELS)
    return data, [("image", (item.image.name, item.image.data, item.image.mime_type))]


@dataclass
class Sent:
    first_send: float
    last_answer: float
    statuses: dict[int, int]
    problems: list[str]


def submit_all(stack: BenchStack, key: str, items: list[Item], options: dict[str, Any]) -> Sent:
    """POST every item from 8 threads (one keep-alive client each), as fast as answered."""
    local = threading.local()
    clients: list[httpx.Client] = []
    statuses: dict[int, int] = {}
    problems: list[str] = []
    lock = threading.Lock()

    def one(item: Item) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(
                base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=120
            )
            clients.append(local.client)
        data, files = _form(item, options)
        answer = local.client.post("/v1/jobs", data=data, files=files)
        with lock:
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            if answer.status_code != 202 and len(problems) < 5:
                problems.append(answer.text[:300])

    started = time.time()
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, items))
    finally:
        for client in clients:
            client.close()
    return Sent(started, time.time(), statuses, problems)


def wait_terminal(stack: BenchStack, tenant: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while stack.count_terminal(tenant) < count:
        stack.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{tenant}: {stack.timing(tenant).counts} after {timeout:g} s")
        time.sleep(1)


def billed(stack: BenchStack) -> dict[str, Decimal]:
    """The emulator's billed USD so far, by tier."""
    stats = httpx.get(f"{stack.emulator_url}/_emulator/stats", timeout=30).json()
    return {tier: Decimal(str(usd)) for tier, usd in stats.get("billed_usd_by_tier", {}).items()}


def _minus(after: dict[str, Decimal], before: dict[str, Decimal]) -> dict[str, Decimal]:
    return {t: after[t] - before.get(t, Decimal(0)) for t in after if after[t] != before.get(t)}


def figures(
    stack: BenchStack, tenant: str, sent: Sent, emulator: dict[str, Decimal]
) -> dict[str, Any]:
    """One run's numbers, read from the database."""
    assert stack.engine is not None
    columns = [JOBS.c[n] for n in (
        "status", "cost_nusd", "standard_cost_nusd", "served_tier", "lane", "cached_from",
        "prompt_tokens", "candidates_tokens", "thoughts_tokens", "deadline_at", "finished_at",
    )]  # fmt: skip
    with stack.engine.connect() as connection:
        rows = connection.execute(select(*columns).where(JOBS.c.tenant == tenant)).all()
    jobs = len(rows)
    cost = sum(r.cost_nusd or 0 for r in rows)
    standard = sum(r.cost_nusd or 0 if r.standard_cost_nusd is None else r.standard_cost_nusd
                   for r in rows)  # fmt: skip
    served: dict[str, int] = {}
    lanes: dict[str, int] = {}
    cost_by_tier: dict[str, int] = {}
    for r in rows:
        tier = r.served_tier or ("cached" if r.cached_from else "none")
        served[tier] = served.get(tier, 0) + 1
        lanes[r.lane] = lanes.get(r.lane, 0) + 1
        cost_by_tier[tier] = cost_by_tier.get(tier, 0) + (r.cost_nusd or 0)
    last = max((r.finished_at for r in rows if r.finished_at), default=None)
    late = [r for r in rows if r.deadline_at and r.finished_at and r.finished_at > r.deadline_at]
    emulator_usd = sum(emulator.values(), Decimal(0))
    recorded_usd = from_nano(cost)
    return {
        "jobs": jobs,
        "statuses": _count(r.status for r in rows),
        "http": sent.statuses,
        "problems": sent.problems,
        "cost_usd": str(recorded_usd),
        "cost_per_1000_usd": float(recorded_usd) * 1000 / max(1, jobs),
        "standard_usd": str(from_nano(standard)),
        "cost_usd_by_tier": {t: str(from_nano(n)) for t, n in sorted(cost_by_tier.items())},
        "emulator_billed_usd": str(emulator_usd),
        "emulator_billed_usd_by_tier": {t: str(v) for t, v in sorted(emulator.items())},
        "recorded_minus_billed_usd": float(recorded_usd - emulator_usd),
        "served": served,
        "lanes": lanes,
        "cache_hits": sum(1 for r in rows if r.cached_from),
        "prompt_tokens": sum(r.prompt_tokens or 0 for r in rows),
        "output_tokens": sum((r.candidates_tokens or 0) + (r.thoughts_tokens or 0) for r in rows),
        "past_deadline": len(late),
        "submit_s": round(sent.last_answer - sent.first_send, 1),
        "makespan_s": round(last.timestamp() - sent.first_send, 1) if last else None,
    }


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def run_phase(
    stack: BenchStack, tenant: str, items: list[Item], options: dict[str, Any], timeout: float
) -> dict[str, Any]:
    key = stack.new_key(tenant)
    before = billed(stack)
    console.print(f"{tenant}: {len(items)} jobs {options}")
    sent = submit_all(stack, key, items, options)
    accepted = sent.statuses.get(202, 0)
    wait_terminal(stack, tenant, accepted, timeout)
    result = figures(stack, tenant, sent, _minus(billed(stack), before))
    console.print({k: v for k, v in result.items() if k not in ("problems",)})
    return result


def wait_batch_measured(stack: BenchStack, model: str, samples: int, timeout: float) -> None:
    """Until the lane measured at least ``samples`` batch turnarounds of ``model``, then the
    API's turnaround cache's lifetime, so that `auto` sees them."""
    assert stack.engine is not None
    query = select(TIER_TURNAROUNDS.c.samples).where(
        TIER_TURNAROUNDS.c.model == model, TIER_TURNAROUNDS.c.tier == "batch"
    )
    deadline = time.monotonic() + timeout
    while True:
        with stack.engine.connect() as connection:
            measured = connection.execute(query).scalar()
        if measured is not None and measured >= samples:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"no batch turnaround of {model} measured after {timeout:g} s")
        time.sleep(2)
    time.sleep(TURNAROUND_CACHE_S + 1)


def cost_report(stack: BenchStack, by: str) -> str:
    """`visionq cost report --by BY` on the bench's database, as a user would read it."""
    done = subprocess.run(
        visionq_command("cost", "report", "--by", by),
        env={**stack.env, "COLUMNS": "150"},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split("input-token estimates")[0].rstrip()


def _usd(text: str) -> str:
    return f"{Decimal(text):.7f}"


def markdown(result: dict[str, Any]) -> str:
    naive, vq, warm = result["naive"], result["visionq"], result["warmup"]

    def mix(run: dict[str, Any]) -> str:
        return ", ".join(f"{tier} {n}" for tier, n in sorted(run["served"].items()))

    rows = [
        ("jobs (succeeded)", naive["statuses"].get("succeeded", 0),
         vq["statuses"].get("succeeded", 0)),
        ("cost per 1,000 images (recorded)", f"${naive['cost_per_1000_usd']:.4f}",
         f"${vq['cost_per_1000_usd']:.4f}"),
        ("emulator billed USD", _usd(naive["emulator_billed_usd"]),
         _usd(vq["emulator_billed_usd"])),
        ("recorded - billed USD", f"{naive['recorded_minus_billed_usd']:.2e}",
         f"{vq['recorded_minus_billed_usd']:.2e}"),
        ("same usage at standard USD", _usd(naive["standard_usd"]), _usd(vq["standard_usd"])),
        ("served tiers", mix(naive), mix(vq)),
        ("cache hits", naive["cache_hits"], vq["cache_hits"]),
        ("prompt / output tokens", f"{naive['prompt_tokens']:,} / {naive['output_tokens']:,}",
         f"{vq['prompt_tokens']:,} / {vq['output_tokens']:,}"),
        ("submit time", f"{naive['submit_s']} s", f"{vq['submit_s']} s"),
        ("makespan (first POST to last end)", f"{naive['makespan_s']} s", f"{vq['makespan_s']} s"),
        ("jobs past deadline", naive["past_deadline"], vq["past_deadline"]),
    ]  # fmt: skip
    ratio = result["ratio"]
    ok = ratio <= TARGET_RATIO and vq["past_deadline"] == 0 and naive["past_deadline"] == 0
    workload = result["workload"]
    head = (
        f"# savings: {workload['images']:,} images, naive against visionq `auto`\n\n"
        f"Workload: {workload['unique']} unique images (copies of {workload['pool']['count']} "
        f"pool images, sides {workload['pool']['min_side']}..{workload['pool']['max_side']} px, "
        f"mean {workload['pool']['mean_kb']} KB) and {workload['repeats']} repeats of an "
        f"earlier (image, task); tasks {workload['tasks']}. One SQLite stack, one emulator "
        f"(`{' '.join(result['emulator_flags'])}`), worker {result['threads']} threads, lane "
        f"{result['lane_settings']}. Naive: `{json.dumps(NAIVE)}`; visionq: "
        f"`{json.dumps(VISIONQ)}` after {warm['jobs']} `tier=batch` warm-up jobs "
        f"(${float(warm['cost_usd']):.4f}, not counted). Model {result['model']}. Machine: "
        f"{result['machine']['cpus']} CPUs; pytest seen during the run: "
        f"{result['pytest_seen']}.\n\n"
    )
    body = table(["", "naive", "visionq auto"], rows)
    body += (
        f"\n**visionq / naive = {ratio:.3f}** (target <= {TARGET_RATIO}), jobs past deadline "
        f"{vq['past_deadline']} (target 0): {verdict(ok)}\n\n"
        "Cache hits: every image is sent within seconds and answered by Gemini batches "
        "later, so a repeat finds no finished answer at submit; the batch lane holds it back "
        "while its first copy is in a Gemini batch (only the first of identical jobs is "
        "gathered) and answers it from that copy once it succeeds, free.\n"
    )
    reports = "\n".join(
        f"\n`visionq cost report --by {by}` (every tenant of the run):\n\n```\n{text}\n```\n"
        for by, text in result["cost_report"].items()
    )
    return head + body + reports


def run(args: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    pool = image_pool(40, seed=20, sides=(1600, 3000))
    items = workload(pool, args.images, args.repeats, args.seed)
    warm_items = [Item(image, "caption", False)
                  for image in unique_images(pool, args.images, args.warmup)]  # fmt: skip
    model = load_catalogue().defaults["model"]
    stack = BenchStack(latency_ms=300, label="savings-", emulator_flags=EMULATOR_FLAGS)
    stack.builder.env.update(LANE_SETTINGS)
    result: dict[str, Any] = {
        "workload": {
            "images": len(items), "unique": sum(not i.repeat for i in items),
            "repeats": sum(i.repeat for i in items), "pool": describe(pool),
            "tasks": _count(i.task for i in items),
        },
        "emulator_flags": ["--latency-ms", "300", *EMULATOR_FLAGS],
        "lane_settings": LANE_SETTINGS, "threads": args.threads, "model": model,
        "machine": machine_facts(),
    }  # fmt: skip
    try:
        stack.start()
        stack.start_worker("threads", args.threads)
        result["naive"] = run_phase(stack, "naive", items, NAIVE, timeout=1800)
        result["warmup"] = run_phase(stack, "warmup", warm_items, WARMUP, timeout=900)
        wait_batch_measured(stack, model, min(20, args.warmup), timeout=300)
        result["visionq"] = run_phase(stack, "visionq", items, VISIONQ, timeout=7200)
        result["cost_report"] = {by: cost_report(stack, by) for by in ("tier", "tenant")}
        result["pytest_seen"] = machine_is_busy()
    finally:
        stack.stop()
    naive_cost = result["naive"]["cost_per_1000_usd"]
    result["ratio"] = round(result["visionq"]["cost_per_1000_usd"] / naive_cost, 4)
    text = markdown(result)
    write(outdir, "savings", result, text)
    console.print(text, markup=False, highlight=False)
    return result
