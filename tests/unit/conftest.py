"""Fixtures shared by unit tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from tests.services import redis_server
from visionq.models.db import make_engine, make_session_factory
from visionq.models.migrate import upgrade
from visionq.models.settings import get_settings


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a SQLite database of this test's own, migrated to head."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL of the database of a VISIONQ_DATA_DIR of this test's own (no other VISIONQ_
    setting from the environment), migrated to head: what the CLI opens."""
    for key in list(os.environ):
        if key.startswith("VISIONQ_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("VISIONQ_DATA_DIR", str(tmp_path / "data"))
    url = get_settings().database_url
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Redis server of this test module's own (a module may define its own)."""
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as url:
        yield url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A connection to the module's Redis, emptied first so no test sees another's keys."""
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    yield connection
    connection.close()
