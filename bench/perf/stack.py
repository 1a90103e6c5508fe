"""A private visionq stack for one benchmark, in a temp dir: Redis, SQLite or PostgreSQL,
the emulator at a set latency, the API, and workers started and stopped at will."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis
from sqlalchemy import Engine, func, select

from cli.processes import ManagedProcess, free_port, http_ok, redis_args, visionq_command
from models.db import make_engine, make_session_factory
from models.keys import create_key
from models.tables import Job
from worker.celery_app import JOBS_QUEUE

TERMINAL = ("succeeded", "failed", "cancelled")
POOLS = ("threads", "prefork", "gevent", "solo")
# Settings that keep visionq's own abuse limits out of the measurement.
BENCH_SETTINGS = {
    "VISIONQ_SUBMIT_RATE_PER_S": "0",
    "VISIONQ_MAX_ACTIVE_JOBS_PER_TENANT": "100000000",
    # The open-loop load keeps up to 256 connections from this one address.
    "VISIONQ_MAX_CONNECTIONS_PER_CLIENT": "0",
}


def add_stack_arguments(parser: argparse.ArgumentParser, *, api_workers: int | None = None) -> None:
    """--database, and --api-workers (with this default) for parts that measure the API."""
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    if api_workers is not None:
        parser.add_argument(
            "--api-workers",
            type=int,
            default=api_workers,
            help="API processes (`visionq api --workers`)",
        )


class StackError(RuntimeError):
    """A process of the stack did not start."""


@dataclass
class Timing:
    """Counts and timestamps of one tenant's jobs, read from the database."""

    counts: dict[str, int]
    first_created: float | None
    last_finished: float | None

    @property
    def terminal(self) -> int:
        return sum(self.counts.get(status, 0) for status in TERMINAL)


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def worker_args(pool: str, concurrency: int, loglevel: str) -> list[str]:
    """The worker's command line. ``gevent`` (which `visionq worker` refuses) starts the
    worker behind gevent's monkey-patching (bench/perf/gevent_worker.py)."""
    options = ["--concurrency", str(concurrency), "--loglevel", loglevel]
    if pool == "gevent":
        return [
            sys.executable,
            "-m",
            "bench.perf.gevent_worker",
            "worker",
            "--pool",
            "gevent",
            *options,
        ]
    return visionq_command("worker", "--pool", pool, *options)


class BenchStack:
    """Start with ``start()``; ``stop()`` always (it stops whatever did start)."""

    def __init__(
        self, *, latency_ms: float, database: str = "sqlite", label: str = "", api_workers: int = 1
    ) -> None:
        self.latency_ms = latency_ms
        self.database = database
        self.api_workers = api_workers
        self.workdir = Path(tempfile.mkdtemp(prefix=f"visionq-bench-{label}"))
        self.processes: dict[str, ManagedProcess] = {}
        self.gemini_key = "bench-" + secrets.token_hex(8)
        self.emulator_url = ""
        self.api_url = ""
        self.database_url = ""
        self.env: dict[str, str] = {}
        self.engine: Engine | None = None
        self._postgres: object | None = None

    # --- processes -----------------------------------------------------------------

    def _start(self, name: str, args: list[str], ready: Callable[[], bool]) -> ManagedProcess:
        proc = ManagedProcess(name, args, log=self.workdir / f"{name}.log", env=self.env)
        self.processes[name] = proc
        deadline = time.monotonic() + 90
        while True:
            try:
                if ready():
                    return proc
            except Exception:  # not up yet: connection refused, log not written, ...
                pass
            if not proc.running or time.monotonic() > deadline:
                raise StackError(f"{name} did not start:\n{proc.log_tail()}")
            time.sleep(0.1)

    def _database(self) -> str:
        if self.database == "sqlite":
            return f"sqlite:///{self.workdir / 'visionq.db'}"
        from tests.services import PostgresServer  # noqa: PLC0415 - only for PostgreSQL runs

        server = PostgresServer()
        self._postgres = server
        server.create()
        return server.url

    def start(self) -> None:
        """Redis, database (migrated), emulator and API."""
        redis_port = free_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        self.env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY",)}
        self._start(
            "redis",
            redis_args(redis_port, self.workdir / "redis", persistent=False),
            lambda: bool(redis.Redis.from_url(redis_url).ping()),
        )
        self.database_url = self._database()
        emulator_port, api_port = free_port(), free_port()
        self.emulator_url = f"http://127.0.0.1:{emulator_port}"
        self.env.update(BENCH_SETTINGS)
        self.env.update(
            VISIONQ_DATA_DIR=str(self.workdir),
            VISIONQ_DATABASE_URL=self.database_url,
            VISIONQ_BLOB_DIR=str(self.workdir / "blobs"),
            VISIONQ_REDIS_URL=redis_url,
            VISIONQ_GEMINI_BASE_URL=self.emulator_url,
            GEMINI_API_KEY=self.gemini_key,
        )
        upgrade = subprocess.run(
            visionq_command("db", "upgrade"),
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if upgrade.returncode != 0:
            raise StackError(f"visionq db upgrade failed:\n{upgrade.stderr[-2000:]}")
        self.engine = make_engine(self.database_url, pool_size=2)
        emulator = visionq_command(
            "emulator",
            "--port",
            str(emulator_port),
            "--api-key",
            self.gemini_key,
            "--latency-ms",
            f"{self.latency_ms:g}",
        )
        self._start("emulator", emulator, lambda: http_ok(f"{self.emulator_url}/healthz"))
        self._start_api(api_port)

    def _start_api(self, port: int) -> None:
        self.api_url = f"http://127.0.0.1:{port}"
        api = visionq_command(
            "api", "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.api_workers)
        )
        # /healthz: /readyz also needs a worker's heartbeat, and workers start per run.
        self._start("api", api, lambda: http_ok(f"{self.api_url}/healthz"))

    def restart_api(self) -> None:
        """A fresh API process (on a new port): nothing left over from an earlier overload."""
        self.processes.pop("api").stop()
        self._start_api(free_port())

    def start_worker(self, pool: str, concurrency: int, *, loglevel: str = "INFO") -> int:
        """Start the one worker; returns its pid once Celery says it is ready."""
        self.stop_worker()
        log = self.workdir / "worker.log"
        offset = log.stat().st_size if log.exists() else 0

        def ready() -> bool:
            return " ready." in log.read_text(errors="replace")[offset:]

        proc = self._start("worker", worker_args(pool, concurrency, loglevel), ready)
        return proc.popen.pid

    def stop_worker(self) -> None:
        worker = self.processes.pop("worker", None)
        if worker is not None:
            worker.stop()

    def purge_queue(self) -> None:
        """Drop queued messages (after a failed run, so they do not land on the next worker)."""
        client = redis.Redis.from_url(self.env["VISIONQ_REDIS_URL"])
        try:
            client.delete(JOBS_QUEUE)
        finally:
            client.close()

    def pid(self, name: str) -> int:
        return self.processes[name].popen.pid

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if not proc.running:
                raise StackError(f"{name} exited:\n{proc.log_tail()}")

    def stop(self) -> None:
        """Stop everything that started (newest first) and remove the temp dir."""
        for name in reversed(list(self.processes)):
            self.processes.pop(name).stop()
        if self.engine is not None:
            self.engine.dispose()
        remove = getattr(self._postgres, "remove", None)
        if callable(remove):
            remove()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- database ------------------------------------------------------------------

    def new_key(self, tenant: str) -> str:
        """A fresh API key of a fresh tenant (each measurement counts its own jobs)."""
        assert self.engine is not None
        with make_session_factory(self.engine).begin() as session:
            return create_key(session, name=tenant, tenant=tenant).secret

    def timing(self, tenant: str) -> Timing:
        """Status counts (cheap: the tenant/status index) and first/last timestamps."""
        assert self.engine is not None
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(Job.status, func.count()).where(Job.tenant == tenant).group_by(Job.status)
            )
            counts = {str(status): int(count) for status, count in rows}
            first, last = connection.execute(
                select(func.min(Job.created_at), func.max(Job.finished_at)).where(
                    Job.tenant == tenant
                )
            ).one()
        return Timing(counts, _epoch(first), _epoch(last))

    def count_terminal(self, tenant: str) -> int:
        assert self.engine is not None
        query = select(func.count()).where(Job.tenant == tenant, Job.status.in_(TERMINAL))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def failures(self, tenant: str, limit: int = 5) -> list[str]:
        """A few error codes and messages of failed jobs, for the report."""
        assert self.engine is not None
        query = (
            select(Job.error_code, Job.error_message)
            .where(Job.tenant == tenant, Job.status != "succeeded")
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [f"{code}: {message}" for code, message in connection.execute(query)]
