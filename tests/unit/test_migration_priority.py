"""Migration 0012: jobs and batches get ``priority`` (NOT NULL, server default 5: rows
already there read 5), and it comes off again on downgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from visionq.models.migrate import alembic_config, current_revision, upgrade


def _priority_out_of_range_is_refused(engine: sa.Engine) -> None:
    """The CHECK: a job or batch row with priority 10 is refused (a poison row would stop
    fair share's push of that job, review finding 34)."""
    for table in ("jobs", "batches"):
        with engine.begin() as connection:
            _insert_minimal(connection, table, priority=9)
            with pytest.raises(sa.exc.IntegrityError):
                _insert_minimal(connection, table, priority=10)


def _insert_minimal(connection: sa.Connection, table: str, *, priority: int) -> None:
    """A row with only the NOT NULL columns without a default filled in."""
    columns = [
        c for c in sa.inspect(connection).get_columns(table)
        if not c["nullable"] and c["default"] is None and c["name"] != "priority"
    ]  # fmt: skip
    values = {c["name"]: _filler(c["type"]) for c in columns} | {"priority": priority}
    names = ", ".join(values)
    marks = ", ".join(f":{name}" for name in values)
    connection.execute(sa.text(f"INSERT INTO {table} ({names}) VALUES ({marks})"), values)


def _filler(kind: object) -> object:
    text = str(kind).upper()
    if "INT" in text:
        return 0
    if "DATE" in text or "TIME" in text:
        return "2026-01-01 00:00:00"
    if "JSON" in text:
        return "{}"
    return "x"


def test_priority_columns_up_and_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    upgrade(url, "0011")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        assert "priority" not in {c["name"] for c in sa.inspect(connection).get_columns("jobs")}
    upgrade(url, "0012")
    assert current_revision(url) == "0012"
    with engine.begin() as connection:
        inspector = sa.inspect(connection)
        for table in ("jobs", "batches"):
            column = {c["name"]: c for c in inspector.get_columns(table)}["priority"]
            assert not column["nullable"] and "5" in str(column["default"])
    _priority_out_of_range_is_refused(engine)
    command.downgrade(alembic_config(url), "0011")
    with engine.begin() as connection:
        inspector = sa.inspect(connection)
        assert all(
            "priority" not in {c["name"] for c in inspector.get_columns(t)}
            for t in ("jobs", "batches")
        )
    engine.dispose()
