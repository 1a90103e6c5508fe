"""Migration 0013: the jobs.retry_of index, built (or found already built, as README tells
operators of a big PostgreSQL jobs table to do beforehand) and dropped on the way down."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import make_url

from visionq.models.migrate import alembic_config, current_revision, upgrade

pytestmark = pytest.mark.integration

INDEX = "ix_jobs_tenant_retry_of"


def _private_database(database_url: str, tmp_path: Path) -> str:
    """A database of this test's own on the session's server (it migrates down and up)."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'migrate.sqlite'}"
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return make_url(database_url).set(database=name).render_as_string(hide_password=False)


def _indexes(url: str) -> set[str]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        found = {index["name"] for index in sa.inspect(connection).get_indexes("jobs")}
    engine.dispose()
    return {name for name in found if name}


def test_the_retry_of_index_goes_up_and_down(database_url: str, tmp_path: Path) -> None:
    url = _private_database(database_url, tmp_path)
    upgrade(url, "0012")
    assert INDEX not in _indexes(url)
    upgrade(url)
    assert current_revision(url) == "0013"
    assert INDEX in _indexes(url)
    command.downgrade(alembic_config(url), "0012")
    assert current_revision(url) == "0012" and INDEX not in _indexes(url)
    # Built by hand first (CONCURRENTLY on PostgreSQL): the migration finds it and goes on.
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    concurrently = "" if url.startswith("sqlite") else "CONCURRENTLY "
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE INDEX {concurrently}{INDEX} ON jobs (tenant, retry_of)")
    engine.dispose()
    upgrade(url)
    assert current_revision(url) == "0013" and INDEX in _indexes(url)
