"""HTTP load on POST /v1/jobs: a closed loop (N jobs, as fast as a thread pool can) and an
open loop (a fixed schedule of sends, whatever the answers' latency)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from bench.perf.images import BenchImage

OPTIONS = json.dumps({"cache": False})  # every job runs: no answer reused from an earlier one


class _Poster:
    """One keep-alive httpx client per thread, all with the same key."""

    def __init__(self, api_url: str, api_key: str, timeout_s: float = 120) -> None:
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()
        self._url, self._key, self._timeout = api_url, api_key, timeout_s

    def post(self, image: BenchImage) -> int:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                base_url=self._url,
                timeout=self._timeout,
                headers={"Authorization": f"Bearer {self._key}"},
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        files = [("image", (image.name, image.data, image.mime_type))]
        try:
            response = client.post(
                "/v1/jobs", data={"task": "caption", "options": OPTIONS}, files=files
            )
        except httpx.HTTPError:
            return 0
        return response.status_code

    def close(self) -> None:
        for client in self._clients:
            client.close()


@dataclass
class SubmitLog:
    """What the client saw: monotonic and wall times, latencies and statuses."""

    first_send_wall: float = 0.0
    started: float = 0.0
    ended: float = 0.0
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    done: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int, latency: float, lag: float = 0.0) -> None:
        with self._lock:
            self.latencies.append(latency)
            self.lags.append(lag)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.done += 1

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 202)

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def submit_closed(
    api_url: str,
    api_key: str,
    images: Sequence[BenchImage],
    *,
    jobs: int,
    threads: int = 16,
    log: SubmitLog | None = None,
) -> SubmitLog:
    """Submit ``jobs`` caption jobs (image ``i % len(images)``) from ``threads`` threads."""
    log = log if log is not None else SubmitLog()
    poster = _Poster(api_url, api_key)

    def one(index: int) -> None:
        sent = time.perf_counter()
        status = poster.post(images[index % len(images)])
        log.record(status, time.perf_counter() - sent)

    log.first_send_wall, log.started = time.time(), time.perf_counter()
    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(jobs)))
    finally:
        log.ended = time.perf_counter()
        poster.close()
    return log


@dataclass
class Background:
    """A closed-loop submission running in a thread; ``log`` fills in as answers come."""

    thread: threading.Thread
    log: SubmitLog
    finished: list[bool]

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


def submit_in_background(
    api_url: str, api_key: str, images: Sequence[BenchImage], *, jobs: int, threads: int = 16
) -> Background:
    """``submit_closed`` in a thread."""
    log, finished = SubmitLog(), []

    def run() -> None:
        submit_closed(api_url, api_key, images, jobs=jobs, threads=threads, log=log)
        finished.append(True)

    thread = threading.Thread(target=run, name="bench-submit", daemon=True)
    thread.start()
    return Background(thread, log, finished)


def submit_open(
    api_url: str,
    api_key: str,
    image: BenchImage,
    *,
    rate: float,
    duration_s: float,
    threads: int = 256,
    tick: Callable[[int], None] | None = None,
) -> SubmitLog:
    """Send at ``rate``/s for ``duration_s`` on a fixed schedule (open loop): a slow answer
    does not delay the next send, so queueing in the API shows up in the latencies.

    ``latencies`` are from the scheduled send time (so a client that falls behind is not
    hidden: no coordinated omission); ``lags`` are scheduled-to-actual send delays.
    """
    log = SubmitLog()
    poster = _Poster(api_url, api_key, timeout_s=60)  # an answer later than this is an error
    total = int(rate * duration_s)

    def one(scheduled: float) -> None:
        lag = time.perf_counter() - scheduled
        status = poster.post(image)
        log.record(status, time.perf_counter() - scheduled, lag)

    log.first_send_wall, log.started = time.time(), time.perf_counter()
    try:
        with ThreadPoolExecutor(threads) as pool:
            for index in range(total):
                scheduled = log.started + index / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(one, scheduled)
                if tick is not None and index % max(1, int(rate)) == 0:
                    tick(log.done)
    finally:
        log.ended = time.perf_counter()
        poster.close()
    return log
