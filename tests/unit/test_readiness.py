"""/readyz (issue 17, bug 8): ready means the database answers at the migrations' head,
Redis answers and a worker beat recently; each failing check says what to do (503)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from tests.services import free_port, redis_server
from visionq.api.app import create_app
from visionq.models.heartbeats import KEY, beat, redis_now
from visionq.models.migrate import head_revision, known_revisions, upgrade
from visionq.models.settings import Settings
from visionq.worker.heartbeat import Heartbeat


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    connection.delete(KEY)
    yield connection
    connection.delete(KEY)
    connection.close()


def _settings(tmp_path: Path, redis_url: str, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path, redis_url=redis_url, gemini_api_key=None, **overrides)


def _readyz(settings: Settings) -> tuple[int, dict[str, str]]:
    with TestClient(create_app(settings)) as api:
        answer = api.get("/readyz")
    body = answer.json()
    assert body["status"] == ("ready" if answer.status_code == 200 else "not ready")
    return answer.status_code, body["checks"]


def test_ready_when_migrated_with_redis_and_a_worker_beating(
    tmp_path: Path, redis_url: str, client: redis.Redis
) -> None:
    settings = _settings(tmp_path, redis_url)
    upgrade(settings.database_url)
    beat(client, "worker-1")
    assert _readyz(settings) == (
        200,
        {"database": "ok", "migrations": "ok", "redis": "ok", "workers": "ok", "blob_store": "ok"},
    )


def test_an_unmigrated_database_is_not_ready(
    tmp_path: Path, redis_url: str, client: redis.Redis
) -> None:
    settings = _settings(tmp_path, redis_url)
    beat(client, "worker-1")
    status, checks = _readyz(settings)
    assert status == 503
    assert checks["database"] == "ok"
    assert checks["migrations"] == (
        f"error: not migrated, head is {head_revision()}; run visionq db upgrade"
    )
    assert checks["workers"] == "ok"


def test_a_database_behind_the_head_is_not_ready(
    tmp_path: Path, redis_url: str, client: redis.Redis
) -> None:
    settings = _settings(tmp_path, redis_url)
    upgrade(settings.database_url, "0006")
    beat(client, "worker-1")
    status, checks = _readyz(settings)
    assert status == 503
    assert checks["migrations"] == (
        f"error: at 0006, head is {head_revision()}; run visionq db upgrade"
    )


def test_migration_scripts_head_is_the_newest_known_revision() -> None:
    assert head_revision() in known_revisions()
    assert max(known_revisions()) == head_revision()


def test_no_worker_is_not_ready(tmp_path: Path, redis_url: str, client: redis.Redis) -> None:
    settings = _settings(tmp_path, redis_url)
    upgrade(settings.database_url)
    status, checks = _readyz(settings)
    assert status == 503
    assert checks == {
        "database": "ok",
        "migrations": "ok",
        "redis": "ok",
        "workers": "error: no worker seen in 30 s; start visionq worker",
        "blob_store": "ok",
    }


def test_a_worker_silent_longer_than_the_window_is_not_counted(
    tmp_path: Path, redis_url: str, client: redis.Redis
) -> None:
    settings = _settings(tmp_path, redis_url, worker_heartbeat_s=10)
    upgrade(settings.database_url)
    client.zadd(KEY, {"gone": redis_now(client) - 100})
    status, checks = _readyz(settings)
    assert status == 503
    assert checks["workers"].startswith("error: no worker seen in 10 s; start visionq worker")
    assert "(the last one beat 100 s ago)" in checks["workers"]


def test_redis_down_is_not_ready(tmp_path: Path) -> None:
    settings = _settings(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    upgrade(settings.database_url)
    status, checks = _readyz(settings)
    assert status == 503
    assert checks["redis"] == "error: ConnectionError; check VISIONQ_REDIS_URL"
    assert checks["workers"] == "error: unknown while Redis is unreachable"


def test_an_unreachable_database_is_not_ready(
    tmp_path: Path, redis_url: str, client: redis.Redis
) -> None:
    closed = f"postgresql://visionq:secret@127.0.0.1:{free_port()}/visionq"
    settings = _settings(tmp_path, redis_url, database_url=closed)
    beat(client, "worker-1")
    status, checks = _readyz(settings)
    assert status == 503
    assert checks["database"] == "error: OperationalError; check VISIONQ_DATABASE_URL"
    assert checks["migrations"] == "error: unknown while the database is unreachable"


def test_the_worker_heartbeat_beats_until_stopped_then_is_gone(
    tmp_path: Path, redis_url: str, client: redis.Redis
) -> None:
    settings = _settings(tmp_path, redis_url, worker_heartbeat_s=0.3)
    heartbeat = Heartbeat(redis.Redis.from_url(redis_url), settings, name="w")
    heartbeat.start()
    try:
        first = client.zscore(KEY, "w")
        assert first is not None  # written before start() returns (before "ready.")
        deadline = time.monotonic() + 10
        while client.zscore(KEY, "w") == first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (client.zscore(KEY, "w") or 0) > first
    finally:
        heartbeat.stop()
    assert client.zscore(KEY, "w") is None


def test_readyz_details_the_batch_lane_and_never_fails_for_it(
    tmp_path: Path, redis_url: str, client: redis.Redis
) -> None:
    """Design 4.7 / review nit 14: /readyz shows the batch lane's batches not closed (a stuck
    one, past VISIONQ_BATCH_STALL_S without progress, included), informational only."""
    from datetime import timedelta

    from sqlalchemy import insert

    from visionq.models.db import make_engine
    from visionq.models.tables import GEMINI_BATCHES, utcnow

    settings = _settings(tmp_path, redis_url, batch_stall_s=600)
    upgrade(settings.database_url)
    beat(client, "worker-1")
    now = utcnow()

    def row(name: str, state: str, progress_s: float) -> dict[str, Any]:
        return {
            "id": name, "identity": "x" * 64, "model": "gemini-3.8-flash", "state": state,
            "input_mode": "inline", "job_count": 3, "request_bytes": 0,
            "progress_at": now - timedelta(seconds=progress_s), "created_at": now,
        }  # fmt: skip

    engine = make_engine(settings.database_url, pool_size=1)
    with engine.begin() as connection:
        connection.execute(insert(GEMINI_BATCHES), [
            row("a", "creating", 5), row("b", "running", 7200), row("c", "pending", 30),
            row("d", "succeeded", 10), row("e", "lost", 10), row("f", "closed", 99_999),
        ])  # fmt: skip
    engine.dispose()
    with TestClient(create_app(settings)) as api:
        answer = api.get("/readyz")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "migrations", "redis", "workers", "blob_store"}
    lane = body["details"]["batch_lane"]
    assert lane == {
        "enabled": True, "live": 3, "creating": 1, "ended": 1, "stalled": 0, "lost": 1,
        "past_stall": 1, "oldest_progress_s": lane["oldest_progress_s"],
    }  # fmt: skip
    assert 7190 <= lane["oldest_progress_s"] <= 7300
