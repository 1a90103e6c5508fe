"""Upgrades started together on one empty database (two `visionq dev` in one data directory,
API replicas starting at once) run one after the other and all succeed."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from visionq.models.db import make_engine
from visionq.models.migrate import current_revision, head_revision

pytestmark = pytest.mark.integration

PROCESSES = 6

# Each child imports first, then waits for the go file, so the upgrades start together.
CHILD = """
import sys, time
from pathlib import Path
from visionq.models.migrate import upgrade
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
upgrade(sys.argv[1])
"""


def empty_database(database_url: str, tmp_path: Path) -> str:
    """A new empty database of the same kind as ``database_url``."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    name = f"race_{uuid.uuid4().hex[:12]}"
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(database_url).set(database=name).render_as_string(hide_password=False)


def test_concurrent_upgrades_of_an_empty_database_all_succeed(
    database_url: str, tmp_path: Path
) -> None:
    url = empty_database(database_url, tmp_path)
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(go)], stderr=subprocess.PIPE, text=True
        )
        for _ in range(PROCESSES)
    ]
    go.touch()
    errors = []
    for child in children:
        _, stderr = child.communicate(timeout=120)
        if child.returncode:
            errors.append(stderr.strip().splitlines()[-3:])
    assert errors == []
    assert current_revision(url) == head_revision()
