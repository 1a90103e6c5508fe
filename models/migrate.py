"""Apply the Alembic migrations: the only way the schema is created or changed."""

from __future__ import annotations

import contextlib
import fcntl
import functools
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, make_url

from visionq.models.db import make_engine, normalise_database_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The PostgreSQL advisory lock upgrades take ("visq"): any 64-bit number no other tool of the
# database uses would do.
_MIGRATION_LOCK_ID = 0x76697371


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at our migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in URL-encoded passwords.
    config.set_main_option(
        "sqlalchemy.url", normalise_database_url(database_url).replace("%", "%%")
    )
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database schema up to ``revision``.

    Upgrades of one database run one at a time (``migration_lock``): two `visionq dev` or
    API replicas starting together would otherwise both create the tables, and the second
    fail with "table alembic_version already exists"."""
    with migration_lock(database_url):
        command.upgrade(alembic_config(database_url), revision)


@contextlib.contextmanager
def migration_lock(database_url: str) -> Iterator[None]:
    """Hold the database's migration lock: a file lock beside a SQLite file, an advisory
    lock on PostgreSQL (held by a connection of its own until the block ends)."""
    url = make_url(normalise_database_url(database_url))
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            yield  # a private in-memory database: nobody to race
            return
        path = Path(url.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        with (path.parent / f"{path.name}.migrate-lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
            yield
        return
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK_ID})")
            try:
                yield
            finally:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK_ID})")
    finally:
        engine.dispose()


def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            return revision_of(connection)
    finally:
        engine.dispose()


def revision_of(connection: Connection) -> str | None:
    """The revision of the database behind ``connection``; None when never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    row = connection.exec_driver_sql("SELECT version_num FROM alembic_version").first()
    return str(row[0]) if row else None


@functools.cache
def _scripts() -> ScriptDirectory:
    # Read once: the migration scripts do not change while a process runs.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config)


def head_revision() -> str:
    """The newest revision of our migration scripts."""
    head = _scripts().get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts in {MIGRATIONS_DIR}")
    return head


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision our migration scripts know."""
    return frozenset(script.revision for script in _scripts().walk_revisions())
