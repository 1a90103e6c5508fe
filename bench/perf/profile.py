"""Sampling profile of the worker with py-spy (optional: `pip install py-spy`)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# visionq's own packages, as py-spy names their files.
_OURS = ("worker/", "models/", "vision/", "api/")


@dataclass
class Profiler:
    """Records ``duration_s`` of the worker after ``delay_s``: an SVG flame graph of every
    busy thread (time spent, waits on sockets and SQLite locks included) and collapsed
    stacks of the thread holding the GIL only (CPU), summarised into the hottest functions."""

    outdir: Path
    duration_s: int = 20
    delay_s: float = 3.0
    threads: list[threading.Thread] = field(default_factory=list)

    @staticmethod
    def available() -> bool:
        return shutil.which("py-spy") is not None

    def attach(self, pid: int) -> None:
        """Start recording ``pid`` in the background (after ``delay_s``)."""

        def record(out: Path, *flags: str) -> None:
            time.sleep(self.delay_s)
            args = ["py-spy", "record", "--pid", str(pid), "--duration", str(self.duration_s)]
            args += ["--rate", "100", "--nonblocking", *flags, "-o", str(out)]
            subprocess.run(args, capture_output=True, check=False)

        self.outdir.mkdir(parents=True, exist_ok=True)
        jobs = (
            (self.outdir / "worker-profile.svg", "--format", "flamegraph"),
            (self.outdir / "worker-profile.txt", "--format", "raw", "--gil"),
        )
        for out, *flags in jobs:
            thread = threading.Thread(target=record, args=(out, *flags), daemon=True)
            thread.start()
            self.threads.append(thread)

    def wait(self) -> None:
        for thread in self.threads:
            thread.join(self.delay_s + self.duration_s + 30)

    def hottest(self, top: int = 15) -> dict[str, list[tuple[str, float]]]:
        """Shares of the on-CPU samples: per function (``self``: the innermost frame), per
        package (innermost frames grouped by their top-level module), and per function of
        visionq's own code (``inclusive``: anywhere on the stack)."""
        path = self.outdir / "worker-profile.txt"
        if not path.exists():
            return {}
        own: Counter[str] = Counter()
        package: Counter[str] = Counter()
        ours: Counter[str] = Counter()
        total = 0
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count, frames = int(count_text), stack.split(";")
            total += count
            own[frames[-1]] += count
            package[_package(frames[-1])] += count
            for frame in {f for f in frames if f.split("(")[-1].startswith(_OURS)}:
                ours[frame] += count
        share = 100.0 / max(1, total)
        return {
            "self_pct": [(f, round(c * share, 1)) for f, c in own.most_common(top)],
            "package_pct": [(f, round(c * share, 1)) for f, c in package.most_common(top)],
            "visionq_inclusive_pct": [(f, round(c * share, 1)) for f, c in ours.most_common(top)],
        }


def _package(frame: str) -> str:
    """``QueryableAttribute.x (sqlalchemy/orm/attributes.py:382)`` -> ``sqlalchemy``."""
    where = frame.rpartition("(")[2].split(":")[0]
    return where.split("/")[0].removesuffix(".py") or "?"
