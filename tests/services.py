"""Real services for integration tests: Redis and PostgreSQL, on free ports.

Processes are managed by cli.processes (the same code `visionq dev` uses), stopped with
their whole process group, so a test run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import redis

from visionq.cli.processes import ManagedProcess as Process
from visionq.cli.processes import free_port, http_ok, redis_args, visionq_command, wait_until

__all__ = [
    "PostgresServer",
    "Process",
    "RedisServer",
    "free_port",
    "postgres_server",
    "redis_server",
    "visionq_command",
    "wait_http",
    "wait_until",
]


@contextlib.contextmanager
def redis_server(workdir: Path, databases: int = 16) -> Iterator[str]:
    server = RedisServer(workdir, persistent=False, databases=databases)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


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


class PostgresServer:
    """A throwaway PostgreSQL cluster that can be killed and started again on its port.

    As root it runs as the 'postgres' user, in a fresh directory under the system temp dir
    (pytest's own is private to root, so the postgres user could not enter it).

    ``listen``: the address it listens on (and, when not loopback, clients from
    ``trusted`` are let in without a password: the multi-host test's namespaces).
    """

    def __init__(self, *, listen: str = "127.0.0.1", trusted: str = "10.231.0.0/16") -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found")
        self.bindir = bindir
        self.user = "postgres" if os.geteuid() == 0 else None
        self.prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        self.workdir = Path(tempfile.mkdtemp(prefix="visionq-pg-"))
        self.data, self.sockets = self.workdir / "data", self.workdir / "sock"
        self.port = free_port()
        self.proc: Process | None = None
        self.listen, self.trusted = listen, trusted
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/visionq"

    def create(self) -> None:
        """initdb, start, and create the visionq database."""
        self.sockets.mkdir()
        if self.user:
            shutil.chown(self.workdir, self.user)
            shutil.chown(self.sockets, self.user)
        initdb = [str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust"]
        _run([*self.prefix, *initdb, "-U", "postgres", "--no-sync", "-E", "UTF8"])
        if self.listen != "127.0.0.1":  # initdb's pg_hba.conf lets in loopback only
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.trusted} trust\n")
        self.start()
        createdb = [str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port)]
        _run([*self.prefix, *createdb, "-U", "postgres", "visionq"])

    def start(self) -> None:
        log = self.workdir / "postgres.log"
        self.proc = Process(
            "postgres",
            [
                str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-k", str(self.sockets), "-c", f"listen_addresses={self.listen}",
                "-c", "fsync=off", "-c", "max_connections=200",
            ],
            log=log,
            user=self.user,
        )  # fmt: skip

        def ready() -> bool:
            probe = [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)]
            return subprocess.run([*self.prefix, *probe], capture_output=True).returncode == 0

        wait_until(ready, timeout=30, what="postgres", log=log)

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash: it recovers from its WAL when started again).

        Only the postmaster: its parent (runuser) reaps it, so no zombie keeps holding the
        PID in postmaster.pid, which would make the next start refuse to run.
        """
        if self.proc is None:
            return
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.proc.popen.wait(10)
        self.proc.stop()
        self.proc = None

    def remove(self) -> None:
        if self.proc is not None:
            self.proc.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster's URL, removed afterwards."""
    server = PostgresServer()
    try:
        server.create()
        yield server.url
    finally:
        server.remove()


class RedisServer:
    """A Redis server on a fixed port that can be SIGKILLed and started again (its AOF
    file, when ``persistent``, brings the data back). ``bind``: the address it listens on
    (not loopback: protected mode off, so clients of other namespaces get in)."""

    def __init__(
        self, workdir: Path, *, persistent: bool, databases: int = 16, bind: str = "127.0.0.1"
    ) -> None:
        self.workdir = workdir
        self.bind = bind
        self.persistent = persistent
        self.databases = databases
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: Process | None = None

    def start(self) -> None:
        args = redis_args(self.port, self.workdir, persistent=self.persistent)
        args += ["--databases", str(self.databases)]
        if self.bind != "127.0.0.1":  # the last --bind wins
            args += ["--bind", self.bind, "--protected-mode", "no"]
        self.proc = Process("redis", args, log=self.workdir / "redis.log")
        wait_until(
            lambda: bool(redis.Redis.from_url(self.url).ping()),
            timeout=20,
            what="redis",
            log=self.proc.log,
        )

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


def wait_http(url: str, *, timeout: float, what: str, log: Path | None = None) -> None:
    wait_until(lambda: http_ok(url), timeout=timeout, what=what, log=log)
