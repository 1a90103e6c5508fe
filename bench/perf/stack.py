"""A private visionq stack for one benchmark, in a temp dir: Redis, SQLite or PostgreSQL,
the emulator at a set latency, the API, and workers started and stopped at will."""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis
from sqlalchemy import Engine, func, select

from visionq.cli.processes import ManagedProcess, visionq_command
from visionq.cli.stackbuild import StackBuilder
from visionq.models.db import make_engine, make_session_factory
from visionq.models.keys import create_key
from visionq.models.tables import Job
from visionq.worker.celery_app import JOBS_QUEUE

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
        self,
        *,
        latency_ms: float,
        database: str = "sqlite",
        label: str = "",
        api_workers: int = 1,
        emulator_flags: Sequence[str] = (),
    ) -> None:
        self.latency_ms = latency_ms
        self.emulator_flags = tuple(emulator_flags)
        self.database = database
        self.api_workers = api_workers
        self.workdir = Path(tempfile.mkdtemp(prefix=f"visionq-bench-{label}"))
        extra_env = {**BENCH_SETTINGS, "VISIONQ_DATA_DIR": str(self.workdir)}
        extra_env["VISIONQ_BLOB_DIR"] = str(self.workdir / "blobs")
        self.builder = StackBuilder(self.workdir, extra_env=extra_env, timeout=90)
        self.gemini_key = "bench-" + secrets.token_hex(8)
        self.emulator_url = ""
        self.api_url = ""
        self.database_url = ""
        self.engine: Engine | None = None
        self._postgres: object | None = None

    @property
    def env(self) -> dict[str, str]:
        """The environment of the stack's processes."""
        return self.builder.env

    @property
    def processes(self) -> dict[str, ManagedProcess]:
        """The running processes by name."""
        return {proc.name: proc for proc in self.builder.processes}

    # --- processes -----------------------------------------------------------------

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
        self.builder.start_redis(persistent=False)
        self.database_url = self._database()
        self.builder.use_database(self.database_url)
        self.builder.migrate()
        self.engine = make_engine(self.database_url, pool_size=2)
        flags = ("--latency-ms", f"{self.latency_ms:g}", *self.emulator_flags)
        self.emulator_url = self.builder.start_emulator(flags, key=self.gemini_key)
        self.builder.use_gemini(self.emulator_url, self.gemini_key)
        self._start_api()

    def _start_api(self) -> None:
        # /healthz: /readyz also needs a worker's heartbeat, and workers start per run.
        self.api_url = self.builder.start_api(args=("--workers", str(self.api_workers)))

    def restart_api(self) -> None:
        """A fresh API process (on a new port): nothing left over from an earlier overload."""
        self.builder.stop_process("api")
        self._start_api()

    def start_worker(self, pool: str, concurrency: int, *, loglevel: str = "INFO") -> int:
        """Start the one worker; returns its pid once Celery says it is ready."""
        self.stop_worker()
        proc = self.builder.start_worker(args=worker_args(pool, concurrency, loglevel))
        return proc.popen.pid

    def stop_worker(self) -> None:
        self.builder.stop_process("worker")

    def purge_queue(self) -> None:
        """Drop queued messages (after a failed run, so they do not land on the next worker)."""
        client = redis.Redis.from_url(self.env["VISIONQ_REDIS_URL"])
        try:
            client.delete(JOBS_QUEUE)
        finally:
            client.close()

    def pid(self, name: str) -> int:
        return self.builder.process(name).popen.pid

    def check_alive(self) -> None:
        self.builder.check_alive()

    def stop(self) -> None:
        """Stop everything that started (newest first) and remove the temp dir."""
        self.builder.stop()
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
