"""The whole visionq stack on one machine: Redis, database, emulator, API and a worker.

Used by `visionq dev` (in the foreground until Ctrl-C) and `visionq demo`. The stack keeps
everything in its own data directory (SQLite database, images, Redis), whatever
VISIONQ_DATABASE_URL, VISIONQ_BLOB_DIR and VISIONQ_REDIS_URL say, so trying it never
touches a configured deployment; the API key it makes is revoked when it stops. Only with
--redis-url does it use a Redis it did not start (where visionq bundles no redis-server).
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
    RedisNotFoundError,
    free_port,
    http_ok,
    port_is_free,
    redis_args,
    visionq_command,
)
from models.db import make_engine, make_session_factory
from models.keys import create_key, revoke_key
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
    # The stack's own data directory (its database, images and Redis).
    data_dir: Path = Path()
    database_url: str = ""
    # The key made for this run (revoked by stop()).
    api_key_id: int | None = None
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
        """Stop the processes, newest first (API before worker before Redis), and revoke
        the key made for this run."""
        for proc in reversed(self.processes):
            proc.stop()
        if self.api_key_id is not None:
            engine = make_engine(self.database_url, pool_size=1)
            try:
                with make_session_factory(engine).begin() as session:
                    revoke_key(session, self.api_key_id)
            finally:
                engine.dispose()
            self.api_key_id = None


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
    try:
        args = redis_args(port, stack.run_dir / "redis", persistent=True)
    except RedisNotFoundError as exc:
        raise StackError(str(exc)) from exc
    _start(stack, "redis", args, env, _safe(lambda: bool(redis.Redis.from_url(url).ping())))


def _check_redis(url: str) -> None:
    """StackError unless the Redis at ``url`` (given with --redis-url) answers."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError) as exc:
        raise StackError(f"cannot use the Redis at {redact_url(url)} (--redis-url): {exc}") from exc


# Said when the stack uses a Redis it did not start: the Celery queue lives in that database.
SHARED_REDIS_NOTE = (
    "the worker takes jobs from this Redis database's queue: give the stack a database no "
    "other visionq uses (e.g. redis://HOST:6379/15)"
)


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
    data_dir: Path,
    api_port: int | None = None,
    redis_url: str | None = None,
    announce: Callable[[str], None] = print,
    worker_concurrency: int = 16,
) -> Stack:
    """Start every part with its data in ``data_dir`` and return once the API is ready;
    stops what started on failure. The other settings (Gemini key, models...) apply.

    ``redis_url``: use that running Redis instead of starting one (for machines where
    visionq bundles no redis-server)."""
    port = _api_port(api_port)
    data_dir = data_dir.expanduser().resolve()
    database_url = f"sqlite:///{data_dir / 'visionq.db'}"
    stack = Stack(
        api_url=f"http://127.0.0.1:{port}",
        api_key="",
        redis_url=redis_url or f"redis://127.0.0.1:{free_port()}/0",
        uses_emulator=settings.gemini_key() is None,
        run_dir=data_dir / "run" / f"dev-{port}",
        data_dir=data_dir,
        database_url=database_url,
    )
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        VISIONQ_DATA_DIR=str(data_dir),
        VISIONQ_DATABASE_URL=database_url,
        VISIONQ_BLOB_DIR=str(data_dir / "blobs"),
        VISIONQ_REDIS_URL=stack.redis_url,
    )
    try:
        announce(f"data      {data_dir}  (this stack's database, images and logs)")
        if redis_url is None:
            _start_redis(stack, env)
            announce(f"redis     {stack.redis_url}  (data in {stack.run_dir / 'redis'})")
        else:
            _check_redis(redis_url)
            announce(
                f"redis     {redact_url(redis_url)}  (yours, not started; {SHARED_REDIS_NOTE})"
            )
        upgrade(database_url)
        if stack.uses_emulator:
            announce(f"emulator  {_start_emulator(stack, env)}")
        args = visionq_command("api", "--host", "127.0.0.1", "--port", str(port))
        # /healthz: /readyz also needs a worker's heartbeat, and the worker starts next.
        _start(stack, "api", args, env, _safe(lambda: http_ok(f"{stack.api_url}/healthz")))
        _start_worker(stack, env, worker_concurrency)
        stack.api_key_id, stack.api_key = _new_key(database_url)
    except BaseException:
        stack.stop()
        raise
    return stack


def _new_key(database_url: str) -> tuple[int, str]:
    engine = make_engine(database_url, pool_size=1)
    try:
        with make_session_factory(engine).begin() as session:
            name = f"dev-{time.strftime('%Y%m%d-%H%M%S')}"
            created = create_key(session, name=name, tenant="default")
            return created.id, created.secret
    finally:
        engine.dispose()
