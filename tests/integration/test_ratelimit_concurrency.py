"""The Gemini rate limiter's rpm and tpm hold across worker processes and threads (real Redis)."""

from __future__ import annotations

import bisect
import json
import math
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.limiter_fixtures import MODEL, prefix, redis_url
from visionq.worker.ratelimit import GeminiRateLimiter, ModelQuota, RateLimitTimeout

__all__ = ["prefix", "redis_url"]  # fixtures used by this module

pytestmark = pytest.mark.integration

PROCESSES = 2
THREADS = 8
WINDOW_S = 1.0
MARGIN_S = 0.05
RUN_S = 3.0


def _hammer(
    url: str, prefix: str, quota: ModelQuota, ready: Any, go: Any, start_at: Any, out: str
) -> None:
    """One worker process: THREADS threads acquiring until the shared stop time."""
    conn = redis.Redis.from_url(url)
    limiter = GeminiRateLimiter(
        conn, {MODEL: quota}, window_s=WINDOW_S, margin_s=MARGIN_S, prefix=prefix
    )
    admitted: list[tuple[float, int]] = []
    errors: list[str] = []
    ready.release()
    go.wait(30)
    start = start_at.value
    stop = start + RUN_S

    def run(index: int) -> None:
        # Different sizes per thread, so token packing is exercised too.
        size = 10 * (1 + index % 4)
        time.sleep(max(0.0, start - time.time()))
        try:
            while True:
                # time.time() deadlines: all processes share the same stop instant.
                limiter.acquire(MODEL, size, deadline=stop, clock=time.time)
                admitted.append((time.time(), size))
        except RateLimitTimeout:
            pass
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    conn.close()
    Path(out).write_text(json.dumps({"admitted": admitted, "errors": errors}))


def _run_workers(
    redis_url: str, prefix: str, quota: ModelQuota, tmp_path: Path
) -> tuple[list[tuple[float, int]], float]:
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Semaphore(0), ctx.Event()
    start_at = ctx.Value("d", 0.0)
    outs = [tmp_path / f"admitted-{n}.json" for n in range(PROCESSES)]
    procs = [
        ctx.Process(target=_hammer, args=(redis_url, prefix, quota, ready, go, start_at, str(out)))
        for out in outs
    ]
    for proc in procs:
        proc.start()
    try:
        # Start together once every process has imported everything.
        for _ in procs:
            assert ready.acquire(timeout=30), "worker process did not start"
        start_at.value = time.time() + 0.2
        go.set()
        for proc in procs:
            proc.join(RUN_S + 15)
            assert proc.exitcode == 0, f"worker process exit code {proc.exitcode}"
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
    admitted: list[tuple[float, int]] = []
    for out in outs:
        result = json.loads(out.read_text())
        assert result["errors"] == []
        admitted += [(t, size) for t, size in result["admitted"]]
    return sorted(admitted), float(start_at.value)


def _max_in_any_window(admitted: list[tuple[float, int]], weight: bool) -> int:
    """Largest count (or token sum) over every closed window [t, t + WINDOW_S]."""
    times = [t for t, _ in admitted]
    best = 0
    for i, (t, _) in enumerate(admitted):
        end = bisect.bisect_right(times, t + WINDOW_S)
        best = max(best, sum(size if weight else 1 for _, size in admitted[i:end]))
    return best


def _theoretical_max(limit: int) -> int:
    # Starting from an empty log, a full quota is admitted at the start and again each time
    # the window (margin included) has passed.
    return limit * math.ceil(RUN_S / (WINDOW_S + MARGIN_S))


def test_rpm_holds_across_processes_and_threads(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    rpm = 20
    admitted, start = _run_workers(redis_url, prefix, ModelQuota(rpm=rpm, tpm=None), tmp_path)
    assert all(start <= t <= start + RUN_S + 0.1 for t, _ in admitted)
    assert _max_in_any_window(admitted, weight=False) <= rpm
    assert len(admitted) >= 0.8 * _theoretical_max(rpm), len(admitted)


def test_tpm_holds_across_processes_and_threads(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    tpm = 400
    admitted, start = _run_workers(redis_url, prefix, ModelQuota(rpm=None, tpm=tpm), tmp_path)
    assert all(start <= t <= start + RUN_S + 0.1 for t, _ in admitted)
    assert _max_in_any_window(admitted, weight=True) <= tpm
    total = sum(size for _, size in admitted)
    assert total >= 0.8 * _theoretical_max(tpm), total
