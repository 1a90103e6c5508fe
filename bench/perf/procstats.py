"""Process measurements with psutil: CPU time and RSS of a process and its children."""

from __future__ import annotations

import contextlib
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

MB = 1024 * 1024


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pid: int, *, descendants: bool = True) -> float:
    """User + system CPU seconds of ``pid`` and (unless told not to) its live descendants."""
    total = 0.0
    for proc in _tree(pid) if descendants else [psutil.Process(pid)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = proc.cpu_times()
            total += float(times.user) + float(times.system)
    return total


def main_thread_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the main thread of ``pid`` (0 if gone).

    In a Celery worker that is the consumer: its event loop receives the messages, hands
    them to the pool and acknowledges them; the tasks run in other threads (or processes).
    """
    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
        for thread in psutil.Process(pid).threads():
            if thread.id == pid:
                return float(thread.user_time) + float(thread.system_time)
    return 0.0


def _pss(pid: int) -> int:
    """Proportional set size (shared pages split between their sharers), from the kernel."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_bytes(pid: int) -> int:
    """Memory of ``pid`` and its descendants: the RSS of a lone process; the sum of the
    PSS of a process tree (prefork children share the parent's pages after fork, and RSS
    would count those once per child). PSS costs a few ms per process to read."""
    tree = _tree(pid)
    total = 0
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, OSError):
            total += _pss(proc.pid) if len(tree) > 1 else int(proc.memory_info().rss)
    return total


@dataclass
class CpuMeter:
    """CPU seconds used by a set of processes between ``start`` and ``stop``."""

    pids: dict[str, int]
    # Names whose process is measured alone (the harness: its children are the stack).
    alone: frozenset[str] = frozenset()
    before: dict[str, float] | None = None
    used: dict[str, float] | None = None

    def _read(self) -> dict[str, float]:
        return {
            name: cpu_seconds(pid, descendants=name not in self.alone)
            for name, pid in self.pids.items()
        }

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> dict[str, float]:
        assert self.before is not None
        after = self._read()
        self.used = {name: after[name] - self.before[name] for name in self.pids}
        return self.used


@dataclass
class RssSeries:
    """RSS samples of one process tree: (seconds since start, jobs done, bytes)."""

    pid: int
    samples: list[tuple[float, int, int]]
    started: float
    calls: int = 0

    @classmethod
    def of(cls, pid: int) -> RssSeries:
        return cls(pid=pid, samples=[], started=time.monotonic())

    def sample(self, jobs_done: int, *, force: bool = False) -> None:
        """Take a sample; for a process tree (PSS, dearer) only every 10th call."""
        self.calls += 1
        if not force and self.calls % 10 != 1 and len(_tree(self.pid)) > 1:
            return
        rss = rss_bytes(self.pid)
        if rss:
            self.samples.append((time.monotonic() - self.started, jobs_done, rss))

    @property
    def peak_mb(self) -> float:
        return max((s[2] for s in self.samples), default=0) / MB

    @property
    def end_mb(self) -> float:
        return self.samples[-1][2] / MB if self.samples else 0.0

    def at_jobs_mb(self, jobs: int) -> float:
        """RSS of the first sample taken once ``jobs`` jobs were done."""
        for _, done, rss in self.samples:
            if done >= jobs:
                return rss / MB
        return self.end_mb


def machine_is_busy(pattern: str = "pytest") -> bool:
    """True while a process matching ``pattern`` runs (another test run would skew timings)."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return bool(found.stdout.strip())


def wait_until_quiet(
    *,
    pattern: str = "pytest",
    poll_s: float = 20,
    timeout_s: float = 1800,
    say: Callable[[str], None] = print,
) -> bool:
    """Wait (up to ``timeout_s``) until nothing matches ``pattern``; False if it never ends."""
    deadline = time.monotonic() + timeout_s
    warned = False
    while machine_is_busy(pattern):
        if time.monotonic() > deadline:
            say(f"'{pattern}' still running after {timeout_s:.0f} s: measuring anyway")
            return False
        if not warned:
            say(f"waiting for '{pattern}' processes to end (polling every {poll_s:.0f} s)")
            warned = True
        time.sleep(poll_s)
    return True


def code_version() -> dict[str, object]:
    """The commit measured, and how many files outside bench/ differ from it."""
    git = ["git", "-C", str(Path(__file__).resolve().parents[2])]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", ".", ":!bench"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "commit": head.stdout.strip(),
        "uncommitted_files_outside_bench": len(dirty.stdout.splitlines()),
    }


def machine_facts() -> dict[str, object]:
    """What the numbers were measured on (machine and code)."""
    return {
        **code_version(),
        "python": platform.python_version(),
        "cpus": psutil.cpu_count(logical=True),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "load_avg_1m": round(psutil.getloadavg()[0], 2),
    }
