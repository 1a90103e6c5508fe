"""Real services for integration tests: Redis and PostgreSQL, on free ports.

Processes are managed by cli.processes (the same code `visionq dev` uses), stopped with
their whole process group, so a test run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import redis

from cli.processes import ManagedProcess as Process
from cli.processes import free_port, http_ok, redis_args, visionq_command, wait_until

__all__ = [
    "Process",
    "free_port",
    "postgres_server",
    "redis_server",
    "visionq_command",
    "wait_http",
    "wait_until",
]


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    proc = Process("redis", redis_args(port, workdir, persistent=False), log=workdir / "redis.log")
    url = f"redis://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: bool(redis.Redis.from_url(url).ping()), timeout=20, what="redis", log=proc.log
        )
        yield url
    finally:
        proc.stop()


def postgres_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster; as root it runs as the 'postgres' user.

    Its directory is a fresh one under the system temp dir (pytest's own is private to
    root, so the postgres user could not enter it), removed afterwards.
    """
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found")
    user = "postgres" if os.geteuid() == 0 else None
    workdir = Path(tempfile.mkdtemp(prefix="visionq-pg-"))
    data, sockets = workdir / "data", workdir / "sock"
    sockets.mkdir()
    if user:
        shutil.chown(workdir, user)
        shutil.chown(sockets, user)
    prefix = ["runuser", "-u", user, "--"] if user else []
    port = free_port()
    proc: Process | None = None
    try:
        _run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )
        log = workdir / "postgres.log"
        proc = Process(
            "postgres",
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            log=log,
            user=user,
        )

        def ready() -> bool:
            probe = [*prefix, str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)]
            return subprocess.run(probe, capture_output=True).returncode == 0

        wait_until(ready, timeout=30, what="postgres", log=log)
        _run(
            [
                *prefix,
                str(bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "visionq",
            ]
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/visionq"
    finally:
        if proc is not None:
            proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def wait_http(url: str, *, timeout: float, what: str, log: Path | None = None) -> None:
    wait_until(lambda: http_ok(url), timeout=timeout, what=what, log=log)
