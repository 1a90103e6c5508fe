"""HTTP load on POST /v1/jobs: a closed loop (N jobs, as fast as a thread pool can) and an
open loop (a fixed schedule of sends, whatever the answers' latency)."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from bench.perf.images import BenchImage

OPTIONS = json.dumps({"cache": False})  # every job runs: no answer reused from an earlier one


class _Poster:
    """One keep-alive connection per thread, all with the same key.

    The multipart body of each image is encoded once and reused: the load generator shares
    the CPU with what it measures, so it should spend as little per request as it can.
    """

    def __init__(self, api_url: str, api_key: str, timeout_s: float = 120) -> None:
        parsed = urllib.parse.urlsplit(api_url)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._bodies: dict[str, tuple[bytes, dict[str, str]]] = {}
        self._lock = threading.Lock()
        self._key, self._timeout = api_key, timeout_s

    def _body(self, image: BenchImage) -> tuple[bytes, dict[str, str]]:
        built = self._bodies.get(image.name)
        if built is None:
            request = httpx.Request(
                "POST",
                "http://bench/v1/jobs",
                data={"task": "caption", "options": OPTIONS},
                files=[("image", (image.name, image.data, image.mime_type))],
            )
            headers = {
                "Authorization": f"Bearer {self._key}",
                "Content-Type": request.headers["Content-Type"],
            }
            built = (request.read(), headers)
            with self._lock:
                self._bodies[image.name] = built
        return built

    def post(self, image: BenchImage) -> int:
        body, headers = self._body(image)
        connection = self._connection()
        try:
            try:
                connection.request("POST", "/v1/jobs", body=body, headers=headers)
            except OSError:  # a keep-alive connection the server closed: open it again once
                connection = self._reconnect(connection)
                connection.request("POST", "/v1/jobs", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self._reconnect(connection)
            return 0  # counted as an error (never sent twice: no duplicate job)
        return response.status

    def _reconnect(self, connection: http.client.HTTPConnection) -> http.client.HTTPConnection:
        connection.close()
        self._local.connection = None
        return self._connection()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        for connection in self._connections:
            connection.close()


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
