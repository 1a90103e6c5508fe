"""Fixtures shared by unit tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

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
