"""The whole visionq stack on one machine: Redis, database, emulator, API and a worker.

Used by `visionq dev` (in the foreground until Ctrl-C) and `visionq demo`. The stack keeps
everything in its own data directory (SQLite database, images, Redis), whatever
VISIONQ_DATABASE_URL, VISIONQ_BLOB_DIR and VISIONQ_REDIS_URL say, so trying it never
touches a configured deployment; the API key it makes is revoked when it stops. Only with
--redis-url does it use a Redis it did not start (where visionq bundles no redis-server).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from visionq.cli.processes import listening_socket
from visionq.cli.stackbuild import StackBuilder, StackError

__all__ = ["EMULATOR_WARNING", "Stack", "StackError", "start_stack"]
from visionq.models.db import make_engine, make_session_factory
from visionq.models.keys import create_key, revoke_key
from visionq.models.migrate import upgrade
from visionq.models.settings import Settings, redact_url

DEFAULT_API_PORT = 8000
EMULATOR_WARNING = (
    "No GEMINI_API_KEY or GOOGLE_API_KEY is set: jobs go to visionq's built-in Gemini "
    "EMULATOR. Its answers are synthetic (measured shapes and colours), not Gemini's. "
    "Set GEMINI_API_KEY to use the real Gemini API."
)


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
    builder: StackBuilder | None = None

    def check_alive(self) -> None:
        """Raise StackError naming the first process that has exited."""
        if self.builder is not None:
            self.builder.check_alive()

    def stop(self) -> None:
        """Stop the processes, newest first (API before worker before Redis), and revoke
        the key made for this run."""
        if self.builder is not None:
            self.builder.stop()
        if self.api_key_id is not None:
            engine = make_engine(self.database_url, pool_size=1)
            try:
                with make_session_factory(engine).begin() as session:
                    revoke_key(session, self.api_key_id)
            finally:
                engine.dispose()
            self.api_key_id = None


def _api_socket(requested: int | None) -> socket.socket:
    """The API's listening socket: on ``requested``, else on 8000, else on a free port."""
    try:
        return listening_socket(DEFAULT_API_PORT if requested is None else requested)
    except OSError:
        if requested is not None:
            raise StackError(f"port {requested} is in use; pick another with --port") from None
        return listening_socket(0)


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
    sock = _api_socket(api_port)
    port = int(sock.getsockname()[1])
    data_dir = data_dir.expanduser().resolve()
    database_url = f"sqlite:///{data_dir / 'visionq.db'}"
    run_dir = data_dir / "run" / f"dev-{port}"
    builder = StackBuilder(
        run_dir,
        database_url=database_url,
        keep_gemini_keys=True,
        extra_env={"VISIONQ_DATA_DIR": str(data_dir), "VISIONQ_BLOB_DIR": str(data_dir / "blobs")},
    )
    stack = Stack(
        api_url=f"http://127.0.0.1:{port}",
        api_key="",
        redis_url=redis_url or "",
        uses_emulator=settings.gemini_key() is None,
        run_dir=run_dir,
        data_dir=data_dir,
        database_url=database_url,
        builder=builder,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        announce(f"data      {data_dir}  (this stack's database, images and logs)")
        if redis_url is None:
            stack.redis_url = builder.start_redis(persistent=True)
            announce(f"redis     {stack.redis_url}  (data in {run_dir / 'redis'})")
        else:
            _check_redis(redis_url)
            builder.use_redis(redis_url)
            announce(
                f"redis     {redact_url(redis_url)}  (yours, not started; {SHARED_REDIS_NOTE})"
            )
        upgrade(database_url)
        if stack.uses_emulator:
            announce(f"emulator  {builder.start_own_emulator()}")
        builder.start_api(sock=sock)
        builder.start_worker(concurrency=worker_concurrency)
        stack.api_key_id, stack.api_key = _new_key(database_url)
    except BaseException:
        sock.close()  # if the API never took it
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
