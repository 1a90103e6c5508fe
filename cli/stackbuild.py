"""One builder for "the whole stack" on one machine: Redis, database, emulator, API, workers.

`visionq dev`/`demo` (cli/stack.py), the integration and fault tests and bench/ all start
their processes through ``StackBuilder``; each keeps only what is its own (which keys it
makes, which settings it forces, what it measures). Options: a Redis of its own or a given
URL, the emulator's flags or a given Gemini URL, extra environment, worker pool and
concurrency, API arguments. Every process logs to ``workdir/<name>.log``.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import redis

from visionq.cli.processes import (
    ManagedProcess,
    RedisNotFoundError,
    free_port,
    http_ok,
    redis_args,
    visionq_command,
)

# The Gemini keys a child must not inherit: the stack says which key (and URL) it uses.
GEMINI_KEY_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY")


class StackError(RuntimeError):
    """A part of the stack could not start or stopped unexpectedly."""


def _safe(check: Callable[[], bool]) -> Callable[[], bool]:
    def run() -> bool:
        try:
            return check()
        except Exception:  # not up yet: connection refused, half-written log, ...
            return False

    return run


def worker_ready(log: Path) -> Callable[[], bool]:
    """True once Celery logged " ready." in ``log`` after this call (a restart appends)."""
    offset = log.stat().st_size if log.exists() else 0
    return lambda: " ready." in log.read_text(errors="replace")[offset:]


class StackBuilder:
    """Starts the parts in the order a caller asks; ``stop()`` stops them newest first.

    ``env`` is the children's environment: by default this process's, without the Gemini
    keys, plus ``extra_env``; the ``use_*``/``start_*`` methods add the URLs they decide.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        keep_gemini_keys: bool = False,
        timeout: float = 60,
    ) -> None:
        self.workdir = workdir
        self.database_url = ""
        self.timeout = timeout
        self.env = {
            name: value
            for name, value in os.environ.items()
            if keep_gemini_keys or name not in GEMINI_KEY_VARIABLES
        }
        if database_url is not None:  # None: decided later, or shared parts (an emulator)
            self.use_database(database_url)
        self.env.update(extra_env or {})
        self.processes: list[ManagedProcess] = []
        self.redis_url = ""
        self.api_url = ""
        # Each worker's metrics URL by name (its own free port: stacks run side by side).
        self.metrics_urls: dict[str, str] = {}

    def start(
        self,
        name: str,
        args: list[str],
        ready: Callable[[], bool],
        *,
        env: Mapping[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> ManagedProcess:
        """Start ``args`` as ``name`` and wait until ``ready()`` (exceptions count as not
        yet); StackError with the log's tail if it exits or takes longer than the timeout."""
        log = self.workdir / f"{name}.log"
        proc = ManagedProcess(name, args, log=log, env=dict(env or self.env), pass_fds=pass_fds)
        self.processes.append(proc)
        deadline = time.monotonic() + self.timeout
        check = _safe(ready)
        while not check():
            if not proc.running or time.monotonic() > deadline:
                raise StackError(f"{name} did not start; last lines of {log}:\n{proc.log_tail()}")
            time.sleep(0.1)
        return proc

    # --- Redis ---------------------------------------------------------------------------

    def start_redis(self, *, persistent: bool = True, db: int = 0) -> str:
        """A Redis of the stack's own (data in ``workdir/redis``); returns its URL."""
        port = free_port()
        url = f"redis://127.0.0.1:{port}/{db}"
        try:
            args = redis_args(port, self.workdir / "redis", persistent=persistent)
        except RedisNotFoundError as exc:
            raise StackError(str(exc)) from exc
        self.start("redis", args, lambda: bool(redis.Redis.from_url(url).ping()))
        return self.use_redis(url)

    def use_redis(self, url: str) -> str:
        """Use a Redis the stack did not start."""
        self.redis_url = url
        self.env["VISIONQ_REDIS_URL"] = url
        return url

    # --- Gemini ----------------------------------------------------------------------------

    def start_emulator(
        self, flags: Iterable[str] = (), *, name: str = "emulator", key: str | None = None
    ) -> str:
        """Start `visionq emulator` with ``flags`` (and ``--api-key key`` if given); returns
        its URL. The stack does not use it until ``use_gemini``."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        args = visionq_command("emulator", "--port", str(port))
        if key is not None:
            args += ["--api-key", key]
        self.start(name, [*args, *flags], lambda: http_ok(f"{url}/healthz"))
        return url

    def use_gemini(self, url: str, key: str) -> None:
        """The workers call Gemini (or an emulator) at ``url`` with ``key``."""
        self.env.pop("GOOGLE_API_KEY", None)
        self.env.update(GEMINI_API_KEY=key, VISIONQ_GEMINI_BASE_URL=url)

    def start_own_emulator(self, flags: Iterable[str] = ()) -> str:
        """An emulator with a throwaway key, used by this stack; returns its URL."""
        key = "emulator-" + secrets.token_hex(8)
        url = self.start_emulator(flags, key=key)
        self.use_gemini(url, key)
        return url

    # --- database, API, workers -----------------------------------------------------------

    def use_database(self, url: str) -> None:
        """The database the API and workers use (created by the caller)."""
        self.database_url = url
        self.env["VISIONQ_DATABASE_URL"] = url

    def migrate(self) -> None:
        """`visionq db upgrade` on the stack's database."""
        done = subprocess.run(  # noqa: S603 - our own command, no shell
            visionq_command("db", "upgrade"),
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise StackError(f"visionq db upgrade failed:\n{done.stderr[-2000:]}")

    def start_api(
        self,
        port: int | None = None,
        *,
        name: str = "api",
        args: Iterable[str] = (),
        sock: socket.socket | None = None,
    ) -> str:
        """`visionq api` on 127.0.0.1 (a free port unless given); returns its URL once
        /healthz answers (/readyz also needs a worker's heartbeat).

        ``sock``: a listening socket (processes.listening_socket) the API serves on instead,
        so the port was never free for anyone else; closed here once the API has it."""
        if sock is not None:
            port = int(sock.getsockname()[1])
            where = ["--fd", str(sock.fileno())]
        else:
            port = free_port() if port is None else port
            where = ["--host", "127.0.0.1", "--port", str(port)]
        url = f"http://127.0.0.1:{port}"
        command = visionq_command("api", *where, *args)
        fds = () if sock is None else (sock.fileno(),)
        try:
            self.start(name, command, lambda: http_ok(f"{url}/healthz"), pass_fds=fds)
        finally:
            if sock is not None:
                sock.close()
        self.api_url = url
        return url

    def start_worker(
        self,
        *,
        name: str = "worker",
        concurrency: int = 16,
        pool: str | None = None,
        args: list[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ManagedProcess:
        """`visionq worker` (or ``args``, e.g. a gevent worker) ready to take jobs; ``env``
        is added to the stack's environment for this worker only. Its metrics are served on
        127.0.0.1 at a free port (``metrics_url(name)``) unless ``env`` or the stack's
        environment names VISIONQ_WORKER_METRICS_PORT."""
        if args is None:
            args = visionq_command("worker", "--concurrency", str(concurrency))
            if pool is not None:
                args += ["--pool", pool]
        worker_env = {**self.env, **(env or {})}
        worker_env.setdefault("VISIONQ_WORKER_METRICS_PORT", str(free_port()))
        worker_env.setdefault("VISIONQ_WORKER_METRICS_HOST", "127.0.0.1")
        port = int(worker_env["VISIONQ_WORKER_METRICS_PORT"])
        if port:
            host = worker_env["VISIONQ_WORKER_METRICS_HOST"]
            self.metrics_urls[name] = f"http://{host}:{port}/metrics"
        ready = worker_ready(self.workdir / f"{name}.log")
        return self.start(name, args, ready, env=worker_env)

    def metrics_url(self, name: str = "worker") -> str:
        """The metrics URL of the worker called ``name`` (KeyError if it serves none)."""
        return self.metrics_urls[name]

    def process(self, name: str) -> ManagedProcess:
        """The newest process called ``name`` (KeyError if none)."""
        for proc in reversed(self.processes):
            if proc.name == name:
                return proc
        raise KeyError(name)

    def stop_process(self, name: str) -> None:
        """Stop (and forget) the newest process called ``name``, if any."""
        for proc in reversed(self.processes):
            if proc.name == name:
                self.processes.remove(proc)
                proc.stop()
                return

    def check_alive(self) -> None:
        """Raise StackError naming the first process that has exited."""
        for proc in self.processes:
            if not proc.running:
                raise StackError(
                    f"{proc.name} exited with code {proc.popen.returncode}; "
                    f"last lines of {proc.log}:\n{proc.log_tail()}"
                )

    def stop(self) -> None:
        """Stop every process, newest first (API before workers before Redis)."""
        while self.processes:
            self.processes.pop().stop()
