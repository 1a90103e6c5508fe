"""Results on disk: JSON and a markdown table per subcommand, the summary with targets."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.perf.procstats import code_version

# Targets of issue 7 (a 2-core machine).
TARGET_RATIO = 0.9  # visionq / raw throughput at concurrency 64 and 0.3 s latency
TARGET_CPU_EXTRA_MS = 3.0  # worker CPU per job above the raw SDK's
TARGET_SUBMIT_P99_MS = 50.0  # at 100 jobs/s with 200 KB images
TARGET_RSS_GROWTH_MB = 50.0  # over 5,000 jobs


def percentiles(values: Sequence[float], scale: float = 1000.0) -> dict[str, float]:
    """p50/p95/p99/max (and mean) of seconds, in milliseconds by default."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    ordered = sorted(values)
    cuts = (
        statistics.quantiles(ordered, n=100, method="inclusive")
        if len(ordered) > 1
        else [ordered[0]] * 99
    )
    return {
        "p50": round(cuts[49] * scale, 2),
        "p95": round(cuts[94] * scale, 2),
        "p99": round(cuts[98] * scale, 2),
        "max": round(ordered[-1] * scale, 2),
        "mean": round(statistics.fmean(ordered) * scale, 2),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def write(outdir: Path, name: str, data: dict[str, Any], markdown: str) -> Path:
    """``name``.json and ``name``.md in ``outdir``; returns the JSON path."""
    outdir.mkdir(parents=True, exist_ok=True)
    data = {"measured_at": time.strftime("%Y-%m-%d %H:%M:%S %z"), "code": code_version(), **data}
    path = outdir / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    (outdir / f"{name}.md").write_text(markdown)
    return path


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, value, target, PASS/MISS) for every number of an `all` run."""
    rows: list[tuple[str, str, str, str]] = []
    if (tp := results.get("throughput")) is not None:
        vq, raw = tp["visionq"], tp["raw"]
        setup = (
            f"N={vq['jobs']}, c={tp['concurrency']}, {tp['latency_ms']:g} ms, {tp['pool']}, "
            f"{tp.get('api_workers', 1)} API process(es)"
        )
        rows += [
            (f"visionq throughput ({setup})", f"{vq['jobs_per_s']:.1f} jobs/s", "", ""),
            ("raw SDK ceiling (same run)", f"{raw['jobs_per_s']:.1f} jobs/s", "", ""),
            (
                "ratio visionq / raw",
                f"{tp['ratio']:.3f}",
                f">= {TARGET_RATIO}",
                verdict(tp["ratio"] >= TARGET_RATIO),
            ),
            ("failed jobs", str(vq["failed"]), "0", verdict(vq["failed"] == 0)),
            ("worker CPU per job", f"{vq['worker_cpu_ms_per_job']:.2f} ms", "", ""),
            (
                "of which Celery's consumer thread",
                _ms(vq.get("worker_consumer_cpu_ms_per_job")),
                "",
                "",
            ),
            ("raw SDK CPU per call", f"{raw['cpu_ms_per_job']:.2f} ms", "", ""),
            (
                "worker CPU above raw",
                f"{tp['cpu_extra_ms']:+.2f} ms",
                f"<= {TARGET_CPU_EXTRA_MS:g} ms",
                verdict(tp["cpu_extra_ms"] <= TARGET_CPU_EXTRA_MS),
            ),
            ("API CPU per job (context)", f"{vq['api_cpu_ms_per_job']:.2f} ms", "", ""),
            ("emulator CPU per job (context)", f"{vq['emulator_cpu_ms_per_job']:.2f} ms", "", ""),
            (
                "worker RSS peak / end",
                f"{vq['rss_peak_mb']:.0f} / {vq['rss_end_mb']:.0f} MB",
                "",
                "",
            ),
        ]
    if (pipe := results.get("pipeline")) is not None:
        rows += [
            (
                "in process, no Celery: run_job / the same SDK call",
                f"{pipe['pipeline']['cpu_ms_per_item']:.2f} / {pipe['raw_cpu_ms_per_call']:.2f} ms",
                "",
                "",
            ),
            ("visionq's own work per job (the difference)",
             f"{pipe['visionq_own_ms_per_job']:+.2f} ms", "", ""),
        ]  # fmt: skip
        if "raw_aio_cpu_ms_per_call" in pipe:
            rows.append(("the same SDK call through client.aio (an asyncio client in the task)",
                         f"{pipe['raw_aio_cpu_ms_per_call']:.2f} ms", "", ""))  # fmt: skip
    if (sub := results.get("submit")) is not None:
        fixed = sub["fixed"]
        lat = fixed["latency_ms"]
        rows += [
            (
                f"submit p50/p95/p99 at {fixed['rate']:g}/s, {sub['image_kb']} KB, "
                f"{sub.get('api_workers', 1)} API process(es)",
                f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} ms",
                f"p99 <= {TARGET_SUBMIT_P99_MS:g} ms",
                verdict(lat["p99"] <= TARGET_SUBMIT_P99_MS),
            ),
            (
                "submit errors at that rate",
                str(fixed["errors"]),
                "0",
                verdict(fixed["errors"] == 0),
            ),
        ]
        if "max_rate" in sub:
            best, capacity = sub["max_rate"], sub.get("capacity_rate")
            rows += [
                (
                    "highest rate the API sustains",
                    f"{best:g} jobs/s" if best else "below the lowest step",
                    f"p99 <= {TARGET_SUBMIT_P99_MS:g} ms, no errors",
                    "",
                ),
                (
                    "highest rate the API keeps up with (any latency)",
                    f"{capacity:g} jobs/s" if capacity else "below the lowest step",
                    ">= 95% answered, no errors",
                    "",
                ),
            ]
    if (soak := results.get("soak")) is not None:
        rows += [
            (
                f"worker RSS over {soak['jobs']} jobs: warm / peak / end",
                " / ".join(f"{soak[k]:.0f}" for k in ("rss_warm_mb", "rss_peak_mb", "rss_end_mb"))
                + " MB",
                "",
                "",
            ),
            (
                "worker RSS growth (end - warm)",
                f"{soak['rss_growth_mb']:+.1f} MB",
                f"< {TARGET_RSS_GROWTH_MB:g} MB",
                verdict(soak["rss_growth_mb"] < TARGET_RSS_GROWTH_MB),
            ),
        ]
    if (models := results.get("models")) is not None:
        for latency, best in models.get("best", {}).items():
            rows.append((f"best execution model at {latency} ms", best, "", ""))
    return rows


def summary_markdown(results: dict[str, Any]) -> str:
    rows = summary_rows(results)
    head = "# visionq performance summary\n\n"
    facts = results.get("machine", {})
    head += (
        f"Machine: {facts.get('cpus')} CPUs, {facts.get('memory_gb')} GB RAM, Python "
        f"{facts.get('python')}; code at {facts.get('commit')} with "
        f"{facts.get('uncommitted_files_outside_bench')} uncommitted files outside bench/. "
        f"Each part's own .md has the detail.\n\n"
    )
    end = results.get("code_at_end", {})
    if end and end != {k: facts.get(k) for k in end}:
        head += (
            f"HEAD or the working tree moved during the run (at the end: {end}): check with "
            f"`git diff {facts.get('commit')} {end.get('commit')}` that no measured code changed; "
            "each part's JSON names the code it ran on.\n\n"
        )
    if disturbed := disturbed_parts(results):
        head += f"**A pytest run was seen during:** {', '.join(disturbed)} (numbers skewed).\n\n"
    return head + table(["metric", "value", "target", "result"], rows)


def disturbed_parts(results: dict[str, Any]) -> list[str]:
    """The parts during which another test run was seen on the machine."""
    found = []
    if results.get("throughput", {}).get("visionq", {}).get("pytest_seen"):
        found.append("throughput")
    submit = results.get("submit", {})
    if any(s.get("pytest_seen") for s in [submit.get("fixed", {}), *submit.get("steps", [])]):
        found.append("submit")
    if results.get("soak", {}).get("run", {}).get("pytest_seen"):
        found.append("soak")
    if any(run.get("pytest_seen") for run in results.get("models", {}).get("runs", [])):
        found.append("models")
    return found
