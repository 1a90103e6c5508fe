"""A whole visionq stack per fault test: its own Redis (AOF on), database, emulator, API and
workers, all real processes that the test can kill and restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from tests.integration.helpers import scene_png
from tests.services import Process, RedisServer, visionq_command, wait_until
from visionq.cli.processes import http_ok
from visionq.cli.stackbuild import StackBuilder
from visionq.models.db import make_engine

# A job's multipart form: its fields and its files.
JobForm = tuple[dict[str, str], list[tuple[str, tuple[str, bytes, str]]]]

TERMINAL = ("succeeded", "failed", "cancelled")
GEMINI_KEY = "fault-test-key"

# Small numbers so that faults resolve in seconds: leases lapse after 4 s, the sweeper runs
# every second, calls time out after 3 s, retries wait 0.1..1.5 s.
FAULT_SETTINGS = {
    "VISIONQ_LEASE_S": "4",
    "VISIONQ_SWEEP_INTERVAL_S": "1",
    "VISIONQ_REQUEUE_AFTER_S": "15",
    "VISIONQ_GEMINI_TIMEOUT_S": "3",
    "VISIONQ_RETRY_BASE_S": "0.1",
    "VISIONQ_RETRY_MAX_DELAY_S": "1.5",
    "VISIONQ_MAX_ATTEMPTS": "12",
    "VISIONQ_JOB_DEADLINE_S": "300",
    "VISIONQ_BROKER_VISIBILITY_TIMEOUT_S": "900",
    "VISIONQ_SUBMIT_RATE_PER_S": "0",
}


@dataclass
class FaultStack:
    workdir: Path
    database_url: str
    builder: StackBuilder | None = None
    # A Redis of its own that a test may kill and start again on the same port.
    redis: RedisServer | None = None
    emulator_url: str = ""
    api: Process | None = None
    api_url: str = ""
    key: str = ""
    workers: list[Process] = field(default_factory=list)
    engine: Engine | None = None
    restarts: int = 0
    # The emulator's command-line flags, kept to start it again the same way.
    emulator_flags: list[str] = field(default_factory=list)

    # --- processes -------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        assert self.builder is not None
        return self.builder.env

    def start(self, *, emulator_flags: Iterable[str] = (), **settings: str) -> None:
        self.redis = RedisServer(self.workdir / "redis", persistent=True)
        self.redis.start()
        gemini_key = settings.pop("gemini_key", GEMINI_KEY)
        extra_env = {
            **FAULT_SETTINGS,
            "VISIONQ_BLOB_DIR": str(self.workdir / "blobs"),
            **{f"VISIONQ_{name.upper()}": value for name, value in settings.items()},
        }
        builder = StackBuilder(self.workdir, database_url=self.database_url, extra_env=extra_env)
        self.builder = builder
        builder.use_redis(f"{self.redis.url}/0")
        self.emulator_flags = list(emulator_flags)
        self.emulator_url = builder.start_emulator(self.emulator_flags)
        builder.use_gemini(self.emulator_url, gemini_key)
        builder.migrate()
        created = subprocess.run(
            visionq_command("keys", "create", "faults", "--tenant", "acme"),
            env=builder.env,
            check=True,
            capture_output=True,
            text=True,
        )
        self.key = created.stdout.strip().splitlines()[-1]
        self.api_url = builder.start_api()
        self.api = builder.process("api")
        self.engine = make_engine(self.database_url, pool_size=2)

    def start_worker(self, concurrency: int = 16, **settings: str) -> Process:
        assert self.builder is not None
        env = {f"VISIONQ_{key.upper()}": value for key, value in settings.items()}
        name = f"worker-{len(self.workers) + 1}"
        worker = self.builder.start_worker(name=name, concurrency=concurrency, env=env)
        self.workers.append(worker)
        return worker

    def kill_worker(self, signum: int = signal.SIGKILL, index: int = -1) -> Process:
        """Send ``signum`` to a worker (the newest by default). SIGKILL goes to its whole
        process group, as the kernel's OOM killer or a node loss would end it: no cleanup,
        no shutdown hook. Any other signal goes to the main process only (a graceful stop)."""
        worker = self.workers[index]
        if signum == signal.SIGKILL:
            worker.kill()
        else:
            os.kill(worker.popen.pid, signum)
        return worker

    def stop(self) -> None:
        if self.builder is not None:
            self.builder.stop()  # workers, API, emulator
        if self.redis is not None:
            self.redis.stop()
        if self.engine is not None:
            self.engine.dispose()

    # --- emulator --------------------------------------------------------------------

    def set_faults(self, **faults: Any) -> None:
        httpx.post(f"{self.emulator_url}/_emulator/faults", json=faults).raise_for_status()

    def emulator_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.emulator_url}/_emulator/stats").json()
        return stats

    def restart_emulator(self, *, down_s: float = 0.0) -> None:
        """Stop the emulator and start it again on the same port with the same flags, after
        ``down_s`` seconds. It remembers nothing: batches, files and runtime faults are gone
        (Google keeps batches; the test exercises visionq's "lost" path)."""
        assert self.builder is not None
        self.builder.stop_process("emulator")
        time.sleep(down_s)
        port = self.emulator_url.rsplit(":", 1)[1]
        args = [*visionq_command("emulator", "--port", port), *self.emulator_flags]
        self.builder.start("emulator", args, lambda: http_ok(f"{self.emulator_url}/healthz"))

    def gemini_batch_list(self) -> list[dict[str, Any]]:
        """Every batch the emulator holds, as Gemini's list answers them (all pages)."""
        batches: list[dict[str, Any]] = []
        token = ""
        with httpx.Client(base_url=self.emulator_url, timeout=30) as client:
            while True:
                params = {"pageSize": "100"} | ({"pageToken": token} if token else {})
                page = client.get(
                    "/v1beta/batches", params=params, headers={"x-goog-api-key": GEMINI_KEY}
                )
                page.raise_for_status()
                body = page.json()
                batches.extend(body.get("operations", []))
                token = body.get("nextPageToken", "")
                if not token:
                    return batches

    def live_gemini_batches(self) -> list[dict[str, Any]]:
        """The emulator's batches still PENDING or RUNNING."""
        live = ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING")
        return [
            batch
            for batch in self.gemini_batch_list()
            if batch.get("metadata", {}).get("state") in live
        ]

    # --- jobs ------------------------------------------------------------------------

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=60)

    def post_jobs(
        self, count: int, form: Callable[[int], JobForm], *, threads: int = 8
    ) -> list[httpx.Response]:
        """POST ``count`` jobs to /v1/jobs from ``threads`` threads; ``form(i)`` gives the
        i-th job's fields and files."""
        local = threading.local()
        # One client per thread, all closed at the end: an unclosed client leaves its
        # sockets to the garbage collector ("unclosed <socket.socket ...>" ResourceWarning).
        clients: list[httpx.Client] = []

        def one(index: int) -> httpx.Response:
            if not hasattr(local, "client"):
                local.client = self.client()
                clients.append(local.client)
            data, files = form(index)
            return local.client.post("/v1/jobs", data=data, files=files)  # type: ignore[no-any-return]

        try:
            with ThreadPoolExecutor(threads) as pool:
                return list(pool.map(one, range(count)))
        finally:
            for client in clients:
                client.close()

    def submit_many(
        self, count: int, *, task: str = "caption", options: Mapping[str, Any] | None = None
    ) -> list[httpx.Response]:
        """Submit ``count`` jobs from 8 threads (result cache off: every job runs); ``options``
        are added to each job's (a tier and deadline, say)."""
        image, _ = scene_png(7, 320, 240)
        job_options = json.dumps({"cache": False, **(options or {})})

        def form(index: int) -> JobForm:
            data = {"task": task, "options": job_options, "prompt": f"#{index}"}
            return data, [("image", ("scene.png", image, "image/png"))]

        return self.post_jobs(count, form)

    def counts(self) -> dict[str, int]:
        assert self.engine is not None
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT status, count(*) FROM jobs GROUP BY status"))
            return {status: int(count) for status, count in rows}

    def wait_for(
        self, condition: Callable[[dict[str, int]], bool], timeout: float, what: str
    ) -> None:
        last: dict[str, int] = {}

        def check() -> bool:
            nonlocal last
            try:
                last = self.counts()
            except Exception:  # the database may be the thing restarting
                return False
            return condition(last)

        try:
            wait_until(check, timeout=timeout, what=what)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; job counts: {last}") from None

    def wait_all_terminal(
        self, total: int, timeout: float = 180, *, supervise: bool = False
    ) -> float:
        """Wait until ``total`` jobs are terminal; returns the seconds it took.

        With ``supervise``, a worker that exited is started again, as a process supervisor
        (compose's restart policy, systemd) does; each restart is counted in ``restarts``.
        """
        started = time.monotonic()

        def done(counts: dict[str, int]) -> bool:
            if supervise and self.workers and not self.workers[-1].running:
                self.restarts += 1
                self.start_worker(concurrency=16)
            return sum(counts.get(s, 0) for s in TERMINAL) >= total

        self.wait_for(done, timeout, "all jobs terminal")
        return time.monotonic() - started

    def webhook_rows(self) -> WebhookRows:
        """The webhook tables as the database holds them: events (the outbox), deliveries,
        attempts (the log) and endpoints."""
        assert self.engine is not None
        queries = {
            "events": "SELECT id, type, subject_id, occurred_at, fanned_out_at FROM webhook_events",
            "deliveries": "SELECT id, event_id, endpoint_id, state, attempts, replays "
            "FROM webhook_deliveries",
            "attempts": "SELECT event_id, attempt, outcome, status_code, error, started_at "
            "FROM webhook_attempts",
            "endpoints": "SELECT id, kind, enabled, failing_since, consecutive_failures, "
            "disabled_reason FROM webhook_endpoints",
        }
        with self.engine.connect() as connection:
            rows = {
                name: [dict(row) for row in connection.execute(text(sql)).mappings().all()]
                for name, sql in queries.items()
            }
        return WebhookRows(**rows)

    def audit(self) -> Audit:
        assert self.engine is not None
        with self.engine.connect() as connection:
            jobs = (
                connection.execute(
                    text(
                        "SELECT id, status, error_code, error_message, result, total_tokens, "
                        "attempt_count, deliveries FROM jobs"
                    )
                )
                .mappings()
                .all()
            )
            attempts = (
                connection.execute(
                    text(
                        "SELECT job_id, outcome, http_status, error_class, retry_delay_s, usage "
                        "FROM attempts"
                    )
                )
                .mappings()
                .all()
            )
        return Audit([dict(row) for row in jobs], [dict(row) for row in attempts])


def _total_tokens(usage: Any) -> int:
    if isinstance(usage, str):
        usage = json.loads(usage)
    return int((usage or {}).get("total_token_count") or 0)


@dataclass
class Audit:
    """What the database says happened, and the exactly-once checks on it."""

    jobs: list[dict[str, Any]]
    attempts: list[dict[str, Any]]

    def by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self.jobs:
            counts[job["status"]] = counts.get(job["status"], 0) + 1
        return counts

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for attempt in self.attempts:
            counts[attempt["outcome"]] = counts.get(attempt["outcome"], 0) + 1
        return counts

    def check_exactly_once(self) -> None:
        """Every job terminal; each succeeded job has one result from one succeeded attempt,
        and its usage is the sum of its counted attempts' usage (recorded once)."""
        per_job: dict[str, list[dict[str, Any]]] = {}
        for attempt in self.attempts:
            per_job.setdefault(attempt["job_id"], []).append(attempt)
        for job in self.jobs:
            assert job["status"] in TERMINAL, job
            tries = per_job.get(job["id"], [])
            assert all(t["outcome"] != "running" for t in tries), (job, tries)
            if job["status"] != "succeeded":
                assert job["error_code"] and job["error_message"], job
                continue
            assert job["result"] is not None, job
            won = [t for t in tries if t["outcome"] == "succeeded"]
            assert len(won) == 1, (job["id"], tries)
            counted = sum(
                _total_tokens(t["usage"]) for t in tries if t["outcome"] in ("succeeded", "failed")
            )
            assert job["total_tokens"] == counted, (job, tries)

    def figures(self, **extra: Any) -> dict[str, Any]:
        return {
            "jobs": len(self.jobs),
            "statuses": self.by_status(),
            "attempts": len(self.attempts),
            "attempt_outcomes": self.outcomes(),
            **extra,
        }


@dataclass
class WebhookRows:
    """The webhook tables after a run (FaultStack.webhook_rows)."""

    events: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]

    def failed_attempts(self) -> list[dict[str, Any]]:
        """The attempts that did not deliver (the receiver down, an error answered...)."""
        return [row for row in self.attempts if row["outcome"] != "succeeded"]

    def delivery_states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.deliveries:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        return counts
