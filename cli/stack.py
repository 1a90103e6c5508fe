"""The whole visionq stack on one machine: Redis, database, emulator, API and a worker.

Used by `visionq dev` (in the foreground until Ctrl-C) and `visionq demo`.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from cli.processes import (
    ManagedProcess,
    free_port,
    http_ok,
    port_is_free,
    redis_args,
    visionq_command,
)
from models.db import make_engine, make_session_factory
from models.keys import create_key
from models.migrate import upgrade
from models.settings import Settings, redact_url

DEFAULT_API_PORT = 8000
EMULATOR_WARNING = (
    "No GEMINI_API_KEY or GOOGLE_API_KEY is set: jobs go to visionq's built-in Gemini "
    "EMULATOR. Its answers are synthetic (measured shapes and colours), not Gemini's. "
    "Set GEMINI_API_KEY to use the real Gemini API."
)


class StackError(RuntimeError):
    """A part of the stack could not start or stopped unexpectedly."""


@dataclass
class Stack:
    api_url: str
    api_key: str
    redis_url: str
    uses_emulator: bool
    run_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    def check_alive(self) -> None:
        """Raise StackError naming the first process that has exited."""
        for proc in self.processes:
            if not proc.running:
                raise StackError(
                    f"{proc.name} exited with code {proc.popen.returncode}; "
                    f"last lines of {proc.log}:\n{proc.log_tail()}"
                )

    def stop(self) -> None:
        """Stop the processes, newest first (API before worker before Redis)."""
        for proc in reversed(self.processes):
            proc.stop()


def _api_port(requested: int | None) -> int:
    if requested is not None:
        if not port_is_free(requested):
            raise StackError(f"port {requested} is in use; pick another with --port")
        return requested
    return DEFAULT_API_PORT if port_is_free(DEFAULT_API_PORT) else free_port()


def _start(
    stack: Stack, name: str, args: list[str], env: dict[str, str], ready: Callable[[], bool]
) -> ManagedProcess:
    proc = ManagedProcess(name, args, log=stack.run_dir / f"{name}.log", env=env)
    stack.processes.append(proc)
    deadline = time.monotonic() + 60
    while not ready():
        if not proc.running or time.monotonic() > deadline:
            raise StackError(f"{name} did not start; last lines of {proc.log}:\n{proc.log_tail()}")
        time.sleep(0.1)
    return proc


def _safe(check: Callable[[], bool]) -> Callable[[], bool]:
    def run() -> bool:
        try:
            return check()
        except Exception:  # not up yet: connection refused, half-written log, ...
            return False

    return run


def _start_redis(stack: Stack, env: dict[str, str]) -> None:
    url = stack.redis_url
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    args = redis_args(port, stack.run_dir / "redis", persistent=True)
    _start(stack, "redis", args, env, _safe(lambda: bool(redis.Redis.from_url(url).ping())))


def _start_emulator(stack: Stack, env: dict[str, str]) -> str:
    """Start the emulator with a throwaway key; point the children's SDK at it."""
    key = "emulator-" + secrets.token_hex(8)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = visionq_command("emulator", "--port", str(port), "--api-key", key)
    _start(stack, "emulator", args, env, _safe(lambda: http_ok(f"{url}/healthz")))
    env.update(GEMINI_API_KEY=key, VISIONQ_GEMINI_BASE_URL=url)
    env.pop("GOOGLE_API_KEY", None)
    return url


def _start_worker(stack: Stack, env: dict[str, str], concurrency: int) -> None:
    log = stack.run_dir / "worker.log"
    offset = log.stat().st_size if log.exists() else 0

    def ready() -> bool:
        return " ready." in log.read_text(errors="replace")[offset:]

    args = visionq_command("worker", "--concurrency", str(concurrency))
    _start(stack, "worker", args, env, _safe(ready))


def start_stack(
    settings: Settings,
    *,
    api_port: int | None = None,
    announce: Callable[[str], None] = print,
    worker_concurrency: int = 16,
) -> Stack:
    """Start every part and return once the API is ready; stops what started on failure.

    An explicit VISIONQ_REDIS_URL is used as is; otherwise a private Redis is started.
    """
    port = _api_port(api_port)
    own_redis = "VISIONQ_REDIS_URL" not in os.environ
    stack = Stack(
        api_url=f"http://127.0.0.1:{port}",
        api_key="",
        redis_url=f"redis://127.0.0.1:{free_port()}/0" if own_redis else settings.redis_url,
        uses_emulator=settings.gemini_key() is None,
        run_dir=settings.data_dir / "run" / f"dev-{port}",
    )
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        VISIONQ_DATA_DIR=str(settings.data_dir),
        VISIONQ_DATABASE_URL=settings.database_url,
        VISIONQ_BLOB_DIR=settings.blob_dir,
        VISIONQ_REDIS_URL=stack.redis_url,
    )
    try:
        if own_redis:
            _start_redis(stack, env)
            announce(f"redis     {stack.redis_url}  (data in {stack.run_dir / 'redis'})")
        upgrade(settings.database_url)
        announce(f"database  {redact_url(settings.database_url)}  (migrated)")
        if stack.uses_emulator:
            announce(f"emulator  {_start_emulator(stack, env)}")
        args = visionq_command("api", "--host", "127.0.0.1", "--port", str(port))
        # /healthz: /readyz also needs a worker's heartbeat, and the worker starts next.
        _start(stack, "api", args, env, _safe(lambda: http_ok(f"{stack.api_url}/healthz")))
        _start_worker(stack, env, worker_concurrency)
        stack.api_key = _new_key(settings)
    except BaseException:
        stack.stop()
        raise
    return stack


def _new_key(settings: Settings) -> str:
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        with make_session_factory(engine).begin() as session:
            name = f"dev-{time.strftime('%Y%m%d-%H%M%S')}"
            return create_key(session, name=name, tenant="default").secret
    finally:
        engine.dispose()
