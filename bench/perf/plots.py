"""PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend is chosen first

MARKERS = {"threads": "o", "prefork": "s", "gevent": "^", "gevent-unpatched": "x", "solo": "d"}


def rss_plot(samples: Sequence[Sequence[float]], path: Path, *, title: str) -> None:
    """Worker RSS (MB) against jobs done."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([s[1] for s in samples], [s[2] for s in samples], lw=1.2)
    ax.set_xlabel("jobs terminal")
    ax.set_ylabel("worker RSS, MB")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def models_plot(result: dict[str, Any], path: Path) -> None:
    """Throughput against concurrency: a panel per latency, a line per execution model,
    the raw SDK ceiling dashed."""
    latencies = result["latencies_ms"]
    fig, axes = plt.subplots(1, len(latencies), figsize=(6 * len(latencies), 4.2), squeeze=False)
    for ax, latency in zip(axes[0], latencies, strict=True):
        runs = [r for r in result["runs"] if r["latency_ms"] == latency]
        for model in dict.fromkeys(r["pool"] for r in runs):
            points = sorted((r["concurrency"], r["jobs_per_s"]) for r in runs if r["pool"] == model)
            ax.plot(*zip(*points, strict=True), marker=MARKERS.get(model, "o"), label=model)
        raw = sorted(
            (r["concurrency"], r["jobs_per_s"]) for r in result["raw"] if r["latency_ms"] == latency
        )
        if raw:
            ax.plot(*zip(*raw, strict=True), "k--", label="raw SDK ceiling")
        ideal = sorted({c for c, _ in raw})
        ax.plot(
            ideal,
            [c * 1000 / latency for c in ideal],
            ":",
            color="grey",
            label="concurrency / latency",
        )
        ax.set_xscale("log", base=2)
        ax.set_xticks(ideal, [str(c) for c in ideal])
        ax.set_xlabel("concurrency")
        ax.set_ylabel("jobs/s")
        ax.set_ylim(
            bottom=0,
            top=max(
                [p["jobs_per_s"] for p in [*runs, *result["raw"]] if p["latency_ms"] == latency]
                + [1]
            )
            * 1.25,
        )
        ax.set_title(f"emulator latency {latency / 1000:g} s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
