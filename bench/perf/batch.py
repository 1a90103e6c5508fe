"""`batch`: `visionq batch run` on a folder of N unique images, against single submits.

One stack (API only while uploading, so the API's CPU is the intake's alone):

1. single submit: POST /v1/jobs of ``--submit-jobs`` images not stored yet (4 threads), the
   API's CPU per job;
2. `visionq batch run FOLDER` (a subprocess, the CLI as a user runs it): items accepted per
   second, the API's CPU per item, RSS of the API and of the CLI sampled every 0.5 s with the
   number of items in the batch at that moment (flat: the same at 2,000 items as at N);
3. a worker (threads, 64; emulator latency 0) runs the batch's jobs;
4. `visionq batch export` of the N results as JSON Lines, CSV and Parquet, timed.

Images: the throughput benchmark's pool (40 images, sides 256..1024 px, half photo-like
JPEGs, half flat PNGs), each copy made unique by its index in a JPEG comment segment or a
PNG tEXt chunk: a new sha256 (so nothing is deduplicated), the same decoding cost.
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import text

from bench.perf.images import BenchImage, describe, image_pool
from bench.perf.load import submit_closed
from bench.perf.procstats import MB, CpuMeter, RssSeries, machine_facts, machine_is_busy
from bench.perf.report import table, verdict, write
from bench.perf.stack import BenchStack, add_stack_arguments
from visionq.cli.processes import visionq_command

console = Console()
BATCH_NAME = "bench"
# Targets of issue 19.
TARGET_CPU_RATIO = 0.5  # API CPU per batch item / per single submit
TARGET_EXPORT_S = 10.0  # export of 10,000 items, each format
# "Flat" memory: the peak RSS after --rss-at items within this of the peak before (the
# soak's bound).
TARGET_RSS_GROWTH_MB = 50.0
SAMPLE_S = 0.5
WARMUP_JOBS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--items", type=int, default=10_000, help="images in the folder")
    parser.add_argument("--submit-jobs", type=int, default=500, help="single submits measured")
    parser.add_argument("--parallel", type=int, default=4, help="visionq batch run --parallel")
    parser.add_argument("--chunk", type=int, default=200, help="visionq batch run --chunk")
    parser.add_argument("--rss-at", type=int, default=2_000, help="items at the RSS baseline")
    parser.add_argument("--threads", type=int, default=64, help="worker threads for the drain")
    add_stack_arguments(parser, api_workers=1)


def unique_copy(image: BenchImage, index: int) -> bytes:
    """``image`` with ``index`` in a JPEG COM segment or a PNG tEXt chunk: other bytes, the
    same pixels."""
    note = f"visionq bench copy {index}".encode()
    if image.mime_type == "image/jpeg":  # right after SOI (FF D8)
        segment = b"\xff\xfe" + struct.pack(">H", len(note) + 2) + note
        return image.data[:2] + segment + image.data[2:]
    body = b"tEXt" + b"Comment\x00" + note  # right after IHDR (8 + 25 bytes)
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    return image.data[:33] + chunk + image.data[33:]


def unique_images(pool: list[BenchImage], start: int, count: int) -> list[BenchImage]:
    """Copies ``start`` .. ``start + count - 1`` (copy ``i`` of pool image ``i % len``)."""
    made = []
    for index in range(start, start + count):
        base = pool[index % len(pool)]
        suffix = base.name.rsplit(".", 1)[1]
        made.append(
            BenchImage(f"copy-{index}.{suffix}", unique_copy(base, index), base.mime_type,
                       base.width, base.height)
        )  # fmt: skip
    return made


def write_folder(pool: list[BenchImage], folder: Path, count: int) -> int:
    """``count`` unique images in ``folder``, 100 to a subfolder; their total bytes."""
    total = 0
    for index in range(count):
        [image] = unique_images(pool, index, 1)
        path = folder / f"part{index // 100:03d}" / image.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image.data)
        total += len(image.data)
    return total


def measure_submit(stack: BenchStack, images: list[BenchImage]) -> dict[str, Any]:
    """API CPU per job of POST /v1/jobs (cache off), after a warm-up."""
    key = stack.new_key(f"submit-{int(time.time())}")
    submit_closed(stack.api_url, key, images[:WARMUP_JOBS], jobs=WARMUP_JOBS, threads=2)
    measured = images[WARMUP_JOBS:]
    meter = CpuMeter({"api": stack.pid("api")})
    meter.start()
    log = submit_closed(stack.api_url, key, measured, jobs=len(measured), threads=4)
    api_cpu = meter.stop()["api"]
    return {
        "jobs": len(measured),
        "errors": log.errors,
        "jobs_per_s": round(log.done / log.seconds, 1),
        "api_cpu_ms_per_job": round(api_cpu * 1000 / max(1, log.done), 2),
    }


@dataclass
class Upload:
    """What `visionq batch run` came to, with the samples taken meanwhile."""

    exit_code: int
    seconds: float
    items: int
    api_cpu_s: float
    api_rss: RssSeries
    cli_rss: RssSeries
    first_item_s: float | None
    tenant: str
    env: dict[str, str]


def _item_count(stack: BenchStack) -> int:
    assert stack.engine is not None
    with stack.engine.connect() as connection:
        query = text("SELECT item_count FROM batches WHERE name = :name")
        found = connection.execute(query, {"name": BATCH_NAME}).scalar()
    return int(found or 0)


def run_batch(stack: BenchStack, folder: Path, args: argparse.Namespace) -> Upload:
    """`visionq batch run FOLDER --no-cache`, sampling the items added and RSS every 0.5 s."""
    tenant = f"batch-{int(time.time())}"
    env = dict(stack.env, VISIONQ_URL=stack.api_url, VISIONQ_API_KEY=stack.new_key(tenant))
    command = visionq_command(
        "batch", "run", str(folder), "--task", "caption", "--no-cache", "--name", BATCH_NAME,
        "--parallel", str(args.parallel), "--chunk", str(args.chunk),
    )  # fmt: skip
    meter = CpuMeter({"api": stack.pid("api")})
    api_rss = RssSeries.of(stack.pid("api"))
    log = (stack.workdir / "batch-run.log").open("w")
    meter.start()
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    cli_rss = RssSeries.of(proc.pid)
    first_item: float | None = None
    try:
        while proc.poll() is None:
            items = _item_count(stack)
            if items and first_item is None:
                first_item = time.monotonic() - started
            api_rss.sample(items, force=True)
            cli_rss.sample(items, force=True)
            time.sleep(SAMPLE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
    seconds = time.monotonic() - started
    api_cpu = meter.stop()["api"]
    items = _item_count(stack)
    api_rss.sample(items, force=True)
    return Upload(proc.returncode, seconds, items, api_cpu, api_rss, cli_rss, first_item,
                  tenant, env)  # fmt: skip


def drain(stack: BenchStack, upload: Upload, threads: int) -> dict[str, Any]:
    """A worker runs the batch's jobs; how long it took and how many failed."""
    stack.start_worker("threads", threads)
    started = time.monotonic()
    while stack.count_terminal(upload.tenant) < upload.items:
        stack.check_alive()
        time.sleep(SAMPLE_S)
    seconds = time.monotonic() - started
    timing = stack.timing(upload.tenant)
    stack.stop_worker()
    return {
        "seconds": round(seconds, 1),
        "jobs_per_s": round(upload.items / seconds, 1),
        "counts": timing.counts,
        "failures": stack.failures(upload.tenant),
    }


def _rows(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        import pyarrow.parquet as pq  # noqa: PLC0415 - the parquet extra, only here

        return int(pq.ParquetFile(path).metadata.num_rows)
    lines = sum(1 for _ in path.open("rb"))
    return lines - 1 if fmt == "csv" else lines  # CSV: the header


def export(stack: BenchStack, upload: Upload) -> dict[str, dict[str, Any]]:
    """`visionq batch export --format F --out FILE` for each format: wall time (the CLI's
    start included), rows, size, the API's CPU."""
    found = {}
    for fmt in ("jsonl", "csv", "parquet"):
        out = stack.workdir / f"export.{fmt}"
        meter = CpuMeter({"api": stack.pid("api")})
        meter.start()
        started = time.monotonic()
        done = subprocess.run(
            visionq_command("batch", "export", BATCH_NAME, "--format", fmt, "--out", str(out)),
            env=upload.env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - started
        api_cpu = meter.stop()["api"]
        if done.returncode != 0:
            raise RuntimeError(f"batch export --format {fmt} failed: {done.stderr}")
        found[fmt] = {
            "seconds": round(seconds, 2),
            "rows": _rows(out, fmt),
            "mb": round(out.stat().st_size / MB, 1),
            "api_cpu_s": round(api_cpu, 2),
        }
        console.print(f"export {fmt}: {found[fmt]}")
    return found


def upload_figures(upload: Upload, rss_at: int) -> dict[str, Any]:
    """The upload's numbers: rates, CPU per item, RSS at ``rss_at`` items and at the end."""
    active = upload.seconds - (upload.first_item_s or 0.0)
    return {
        "exit_code": upload.exit_code,
        "items": upload.items,
        "seconds": round(upload.seconds, 1),
        "items_per_s": round(upload.items / upload.seconds, 1),
        "items_per_s_after_first": round(upload.items / max(active, 1e-9), 1),
        "api_cpu_ms_per_item": round(upload.api_cpu_s * 1000 / max(1, upload.items), 2),
        "api_rss_mb": _rss(upload.api_rss, rss_at, upload.items),
        "cli_rss_mb": _rss(upload.cli_rss, rss_at, upload.items),
        "samples": {
            "api": [(round(t, 1), n, round(b / MB, 1)) for t, n, b in upload.api_rss.samples],
            "cli": [(round(t, 1), n, round(b / MB, 1)) for t, n, b in upload.cli_rss.samples],
        },
    }


def _rss(series: RssSeries, rss_at: int, items: int) -> dict[str, float]:
    """RSS when the batch first held ``rss_at`` items, half of them, all of them; the peak
    up to ``rss_at`` items and after; growth = the later peak above the earlier one."""
    early = [b for _, n, b in series.samples if n <= rss_at]
    late = [b for _, n, b in series.samples if n > rss_at]
    early_peak = max(early, default=0) / MB
    late_peak = max(late, default=0) / MB
    return {
        "at_baseline": round(series.at_jobs_mb(rss_at), 1),
        "at_half": round(series.at_jobs_mb(items // 2), 1),
        "at_all": round(series.at_jobs_mb(items), 1),
        "peak_to_baseline": round(early_peak, 1),
        "peak": round(max(early_peak, late_peak), 1),
        "growth": round(late_peak - early_peak, 1),
    }


def markdown(result: dict[str, Any]) -> str:
    up, sub, n = result["upload"], result["submit"], result["items"]
    ratio = result["cpu_ratio"]
    at = result["rss_at"]
    api, cli = up["api_rss_mb"], up["cli_rss_mb"]
    rows: list[tuple[str, str, str, str]] = [
        (f"items accepted per second (`visionq batch run`, {n:,} images, CLI wall time)",
         f"{up['items_per_s']:,.1f}/s ({up['seconds']:.1f} s)", "", ""),
        ("  from the first item added to the end", f"{up['items_per_s_after_first']:,.1f}/s",
         "", ""),
        ("single submit (POST /v1/jobs, same images) jobs/s, 4 threads",
         f"{sub['jobs_per_s']:,.1f}/s", "", ""),
        ("API CPU per batch item", f"{up['api_cpu_ms_per_item']:.2f} ms", "", ""),
        (f"API CPU per single submit ({sub['jobs']} jobs)", f"{sub['api_cpu_ms_per_job']:.2f} ms",
         "", ""),
        ("ratio batch / single", f"{ratio:.2f}", f"<= {TARGET_CPU_RATIO:g}",
         verdict(ratio <= TARGET_CPU_RATIO)),
    ]  # fmt: skip
    for name, rss in (("API", api), ("CLI", cli)):
        rows.append(
            (f"{name} RSS at {at:,} / {n // 2:,} / {n:,} items",
             f"{rss['at_baseline']:.0f} / {rss['at_half']:.0f} / {rss['at_all']:.0f} MB", "", "")
        )  # fmt: skip
        rows.append(
            (f"{name} RSS peak up to {at:,} items / after (growth)",
             f"{rss['peak_to_baseline']:.0f} / {rss['peak']:.0f} MB ({rss['growth']:+.0f} MB)",
             f"growth < {TARGET_RSS_GROWTH_MB:g} MB",
             verdict(rss["growth"] < TARGET_RSS_GROWTH_MB))
        )  # fmt: skip
    drained = result["drain"]
    rows.append(
        (f"worker drain ({result['threads']} threads, emulator latency 0)",
         f"{drained['seconds']:.1f} s, {drained['jobs_per_s']:,.1f} jobs/s, {drained['counts']}",
         "", "")
    )  # fmt: skip
    for fmt, figures in result["export"].items():
        rows.append(
            (f"export {figures['rows']:,} items as {fmt} ({figures['mb']} MB)",
             f"{figures['seconds']:.2f} s", f"< {TARGET_EXPORT_S:g} s",
             verdict(figures["seconds"] < TARGET_EXPORT_S and figures["rows"] == n))
        )  # fmt: skip
    pool = result["pool"]
    head = (
        f"# batch: `visionq batch run` of {n:,} images, {result['database']}, "
        f"{result['api_workers']} API process\n\n"
        f"Images: {pool['count']} pool images ({pool['jpeg']} JPEG, {pool['png']} PNG, sides "
        f"{pool['min_side']}..{pool['max_side']} px, mean {pool['mean_kb']} KB) copied "
        f"{n:,} times, each copy unique (index in a JPEG comment / PNG tEXt chunk); "
        f"{result['folder_mb']:,.0f} MB in the folder. `--parallel {result['parallel']} "
        f"--chunk {result['chunk']} --no-cache`; no worker while uploading. CPU is user + "
        f"system of the API process; RSS sampled every {SAMPLE_S:g} s with the batch's item "
        f"count. Machine: {result['machine']['cpus']} CPUs, load {result['machine']['load_avg_1m']}"
        f" at the start; pytest seen during the run: {result['pytest_seen']}.\n\n"
    )
    return head + table(["metric", "value", "target", "result"], rows)


def run(args: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    pool = image_pool(40, sides=(256, 1024))
    stack = BenchStack(
        latency_ms=0, database=args.database, label="batch-", api_workers=args.api_workers
    )
    try:
        stack.start()
        folder = stack.workdir / "images"
        folder_bytes = write_folder(pool, folder, args.items)
        console.print(f"{args.items:,} images written ({folder_bytes / MB:,.0f} MB)")
        submit_images = unique_images(pool, args.items, WARMUP_JOBS + args.submit_jobs)
        result: dict[str, Any] = {
            "items": args.items, "database": args.database, "api_workers": args.api_workers,
            "parallel": args.parallel, "chunk": args.chunk, "threads": args.threads,
            "rss_at": args.rss_at, "pool": describe(pool),
            "folder_mb": round(folder_bytes / MB, 1), "machine": machine_facts(),
        }  # fmt: skip
        result["submit"] = measure_submit(stack, submit_images)
        console.print(f"single submit: {result['submit']}")
        upload = run_batch(stack, folder, args)
        if upload.exit_code != 0 or upload.items != args.items:
            log = (stack.workdir / "batch-run.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"batch run exit {upload.exit_code}, {upload.items} items:\n{log}")
        result["upload"] = upload_figures(upload, args.rss_at)
        console.print({k: v for k, v in result["upload"].items() if k != "samples"})
        result["pytest_seen"] = machine_is_busy()
        result["drain"] = drain(stack, upload, args.threads)
        console.print(f"drain: {result['drain']}")
        result["export"] = export(stack, upload)
        result["pytest_seen"] = result["pytest_seen"] or machine_is_busy()
    finally:
        stack.stop()
    up = result["upload"]
    result["cpu_ratio"] = round(
        up["api_cpu_ms_per_item"] / result["submit"]["api_cpu_ms_per_job"], 3
    )
    text = markdown(result)
    write(outdir, "batch", result, text)
    console.print(text, markup=False, highlight=False)
    return result
