"""Migration 0012: jobs and batches get ``priority`` (NOT NULL, server default 5: rows
already there read 5), and it comes off again on downgrade."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from visionq.models.migrate import alembic_config, current_revision, upgrade


def test_priority_columns_up_and_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    upgrade(url, "0011")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        assert "priority" not in {c["name"] for c in sa.inspect(connection).get_columns("jobs")}
    upgrade(url)
    assert current_revision(url) == "0012"
    with engine.begin() as connection:
        inspector = sa.inspect(connection)
        for table in ("jobs", "batches"):
            column = {c["name"]: c for c in inspector.get_columns(table)}["priority"]
            assert not column["nullable"] and "5" in str(column["default"])
    command.downgrade(alembic_config(url), "0011")
    with engine.begin() as connection:
        inspector = sa.inspect(connection)
        assert all(
            "priority" not in {c["name"] for c in inspector.get_columns(t)}
            for t in ("jobs", "batches")
        )
    engine.dispose()
