"""The integration stack: real Redis, SQLite or PostgreSQL, emulator, API and Celery worker.

Everything runs as separate processes started here, talking over real sockets, exactly
as in production: the API and the worker only share the database, the blob store and
Redis; the worker reaches the emulator through the google-genai SDK.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.inprocess import InProcessApi, in_process_api
from tests.integration.test_migration_race import empty_database
from tests.services import (
    Process,
    postgres_bindir,
    postgres_server,
    redis_server,
    visionq_command,
)
from visionq.cli.stackbuild import StackBuilder
from visionq.models.db import make_engine, make_session_factory
from visionq.models.migrate import upgrade

GEMINI_KEY = "emulator-test-key"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


# Redis databases on the session's server: one per stack or in-process app (``redis_db``).
REDIS_DATABASES = 1024  # room to spare: every stack and in-process app module takes one
_redis_dbs = itertools.count(1)


@pytest.fixture(scope="session")
def redis_url(workdir: Path) -> Iterator[str]:
    with redis_server(workdir / "redis", databases=REDIS_DATABASES) as url:
        yield url


def redis_db(redis_url: str) -> str:
    """A database of the session's Redis no other stack or app of this session uses, so
    queues, rate limits and keys never mix (flushed first, for a rerun's leftovers)."""
    number = next(_redis_dbs)
    assert number < REDIS_DATABASES, "raise REDIS_DATABASES in tests/integration/conftest.py"
    url = f"{redis_url}/{number}"
    redis.Redis.from_url(url).flushdb()
    return url


def _start_emulator(workdir: Path, name: str, *flags: str) -> tuple[StackBuilder, str]:
    """An emulator shared by several stacks (so a builder of its own); ``stop()`` it."""
    builder = StackBuilder(workdir)
    return builder, builder.start_emulator(flags, name=name, key=GEMINI_KEY)


@pytest.fixture(scope="session")
def emulator_url(workdir: Path) -> Iterator[str]:
    proc, url = _start_emulator(workdir, "emulator")
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def slow_emulator_url(workdir: Path) -> Iterator[str]:
    """An emulator whose every answer takes 3 s, so a job can be caught running."""
    proc, url = _start_emulator(workdir, "slow-emulator", "--latency-ms", "3000")
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def files_emulator_url(workdir: Path) -> Iterator[str]:
    """An emulator whose uploads take 0.3 s to turn ACTIVE and whose every 2nd structured
    answer is invalid, for the File API and schema-retry paths."""
    flags = ("--file-processing-s", "0.3", "--invalid-json-every", "2")
    proc, url = _start_emulator(workdir, "files-emulator", *flags)
    yield url
    proc.stop()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[InProcessApi]:
    """The API app in process (inprocess.py), for route tests that need no worker: a new
    SQLite database and a flushed Redis database per test module, keys for acme and globex,
    image URLs allowed from 127.0.0.2 as on the process stack (``_build_stack``)."""
    with in_process_api(
        Path(tmp_path_factory.mktemp("api")),
        redis_db(redis_url),
        ("acme", "globex"),
        url_fetch_allowed_networks=["127.0.0.2/32"],
    ) as app:
        yield app


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{workdir / 'sqlite' / 'visionq.db'}"
        return
    if postgres_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are required in CI")
        pytest.skip("PostgreSQL server binaries not installed")
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the shared database of ``database_url``, migrated to head: every test
    keeps to rows of its own (a tenant, ``model`` or ``identity`` of its own)."""
    upgrade(database_url)
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def model() -> str:
    """A model name of this test's own (not in the catalogue)."""
    return f"gemini-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def identity() -> str:
    """A Gemini identity (the project a key belongs to) of this test's own."""
    return uuid.uuid4().hex


@dataclass
class Stack:
    """A running API (and optionally worker) with its environment and API keys."""

    name: str
    builder: StackBuilder
    api_url: str = ""
    keys: dict[str, str] = field(default_factory=dict)
    worker: Process | None = None

    @property
    def env(self) -> dict[str, str]:
        return self.builder.env

    @property
    def workdir(self) -> Path:
        return self.builder.workdir

    @property
    def processes(self) -> list[Process]:
        return self.builder.processes

    def client(self, tenant: str = "acme") -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.keys[tenant]}"},
            timeout=30,
        )

    def start_worker(self, concurrency: int = 8) -> Process:
        self.worker = self.builder.start_worker(name=f"{self.name}-worker", concurrency=concurrency)
        return self.worker

    def stop(self) -> None:
        self.builder.stop()


def _create_key(env: dict[str, str], tenant: str) -> str:
    done = subprocess.run(
        visionq_command("keys", "create", f"{tenant}-key", "--tenant", tenant),
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1]


def _build_stack(
    name: str,
    workdir: Path,
    database_url: str,
    redis_url: str,
    gemini_url: str,
    *,
    with_worker: bool,
    max_image_bytes: int = 4 * 1024 * 1024,
    extra_env: dict[str, str] | None = None,
) -> Stack:
    env = {
        "VISIONQ_BLOB_DIR": str(workdir / "blobs"),
        "VISIONQ_MAX_IMAGE_BYTES": str(max_image_bytes),
        # Image URLs: 127.0.0.2 stands for a public image host (tests/integration/urls.py);
        # every other local address stays forbidden.
        "VISIONQ_URL_FETCH_ALLOWED_NETWORKS": '["127.0.0.2/32"]',
        **(extra_env or {}),
    }
    builder = StackBuilder(workdir, database_url=database_url, extra_env=env)
    builder.use_redis(redis_db(redis_url))
    builder.use_gemini(gemini_url, GEMINI_KEY)
    stack = Stack(name=name, builder=builder)
    builder.migrate()
    stack.keys = {tenant: _create_key(builder.env, tenant) for tenant in ("acme", "globex")}
    stack.api_url = builder.start_api(name=f"{name}-api")
    if with_worker:
        stack.start_worker()
    return stack


def _backend_stack(
    kind: str,
    workdir: Path,
    database_url: str,
    redis_url: str,
    gemini_url: str,
    **kwargs: Any,
) -> Stack:
    """A stack named after its database backend (its own Redis database, as every stack)."""
    backend = database_url.split(":", 1)[0]
    return _build_stack(f"{kind}-{backend}", workdir, database_url, redis_url, gemini_url, **kwargs)


@pytest.fixture(scope="session")
def stack(workdir: Path, database_url: str, redis_url: str, emulator_url: str) -> Iterator[Stack]:
    built = _backend_stack("main", workdir, database_url, redis_url, emulator_url, with_worker=True)
    yield built
    built.stop()


@pytest.fixture(scope="session")
def paused_stack(
    workdir: Path, database_url: str, redis_url: str, slow_emulator_url: str
) -> Iterator[Stack]:
    """API without a running worker (tests start it), in front of the slow emulator."""
    built = _backend_stack(
        "paused", workdir, database_url, redis_url, slow_emulator_url, with_worker=False
    )
    yield built
    built.stop()


@pytest.fixture(scope="session")
def files_stack(
    workdir: Path, database_url: str, redis_url: str, files_emulator_url: str
) -> Iterator[Stack]:
    """A stack taking images up to 64 MB, in front of the files emulator."""
    built = _backend_stack(
        "files", workdir, database_url, redis_url, files_emulator_url,
        with_worker=True, max_image_bytes=64 * 1024 * 1024,
    )  # fmt: skip
    built.env["EMULATOR_URL"] = files_emulator_url
    yield built
    built.stop()


@pytest.fixture(scope="session")
def calibration_stack(workdir: Path, redis_url: str) -> Iterator[Stack]:
    """Its own SQLite database, in front of an emulator that bills every image 258 tokens
    (as Gemini 2.5 was seen to in the field), unlike the documented tile rule."""
    proc, url = _start_emulator(workdir, "flat-emulator", "--flat-image-tokens", "258")
    built = _build_stack(
        "calibration", workdir, f"sqlite:///{workdir / 'calibration.db'}", redis_url, url,
        with_worker=True,
    )  # fmt: skip
    yield built
    built.stop()
    proc.stop()


@pytest.fixture(scope="session")
def open_models_stack(workdir: Path, redis_url: str, emulator_url: str) -> Iterator[Stack]:
    """No worker, its own SQLite database, and VISIONQ_ALLOW_UNKNOWN_MODELS: jobs may name
    models the catalogue does not know (no estimate, no price)."""
    built = _build_stack(
        "open-models", workdir, f"sqlite:///{workdir / 'open-models.db'}", redis_url,
        emulator_url, with_worker=False, extra_env={"VISIONQ_ALLOW_UNKNOWN_MODELS": "true"},
    )  # fmt: skip
    yield built
    built.stop()


# The emulator's own billing, made to disagree with visionq's catalogue: 3.5 Flash-Lite bills
# a flat 1,089 tokens per image (as one field report measured), 3.8 Flash bills 768-px tiles.
DISAGREEING_MODELS = {
    "models": {
        "gemini-3.5-flash-lite": {"billing": {"image_rule": "flat", "tile_tokens": 1089}},
        "gemini-3.8-flash": {
            "billing": {"image_rule": "tiles_768", "tile_tokens": 258, "small_max_side": 384}
        },
    }
}


@pytest.fixture(scope="session")
def witness_stack(workdir: Path, redis_url: str) -> Iterator[Stack]:
    """Its own SQLite database, in front of an emulator whose catalogue file bills images
    unlike visionq's estimates (``DISAGREEING_MODELS``)."""
    models_file = workdir / "witness-models.json"
    models_file.write_text(json.dumps(DISAGREEING_MODELS), encoding="utf-8")
    proc, url = _start_emulator(workdir, "witness-emulator", "--models-file", str(models_file))
    built = _build_stack(
        "witness", workdir, f"sqlite:///{workdir / 'witness.db'}", redis_url, url,
        with_worker=True,
    )  # fmt: skip
    yield built
    built.stop()
    proc.stop()


def batch_lane_stack(
    name: str,
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str,
    redis_url: str,
    *,
    settings: dict[str, str],
    emulator_flags: list[str],
    tenant: str | None = "acme",
) -> Stack:
    """A stack ``name`` for the Gemini Batch lane: the API, an emulator and an empty database
    of its own (another stack's lane would gather its jobs), the lane's polling and the
    sweeper fast, batches gathered for up to 60 s. ``settings`` add to (or
    replace) those; ``tenant`` gets an API key. The worker is started by the test."""
    here = tmp_path_factory.mktemp(name)
    builder = StackBuilder(here, database_url=empty_database(database_url, here), extra_env={
        "VISIONQ_BLOB_DIR": str(here / "blobs"),
        "VISIONQ_BATCH_POLL_S": "1",
        "VISIONQ_BATCH_GATHER_S": "60",
        "VISIONQ_SWEEP_INTERVAL_S": "1",
        **settings,
    })  # fmt: skip
    builder.use_redis(redis_db(redis_url))
    emulator = builder.start_emulator(emulator_flags, name=f"{name}-emulator", key=GEMINI_KEY)
    builder.use_gemini(emulator, GEMINI_KEY)
    stack = Stack(name=name, builder=builder)
    builder.migrate()
    if tenant is not None:
        stack.keys = {tenant: _create_key(builder.env, tenant)}
    stack.api_url = builder.start_api(name=f"{name}-api")
    return stack
