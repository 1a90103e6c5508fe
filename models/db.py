"""Engine and session factory: built from a URL, passed to whoever needs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def normalise_database_url(url: str) -> str:
    """Pick the psycopg 3 driver for bare postgresql:// URLs (SQLAlchemy would pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, pool_size: int = 10, busy_timeout_s: float = 30.0) -> Engine:
    """An engine for SQLite or PostgreSQL; creates the directory of a SQLite file.

    ``busy_timeout_s``: how long a SQLite write waits for another process's lock before
    "database is locked" (the API takes a short one, to answer 503 quickly).
    """
    url = normalise_database_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": pool_size,
        "max_overflow": pool_size,
    }
    if parsed.get_backend_name() == "sqlite":
        # A file opened in-process cannot go away as a server connection can: no ping at
        # each checkout (two per job in the worker).
        kwargs["pool_pre_ping"] = False
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:  # one connection per thread: no pool to size
            del kwargs["pool_size"], kwargs["max_overflow"]
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout_s}
    else:
        # Bounded waits: a connection attempt to an unreachable server gives up after 10 s
        # (psycopg's default is to wait for the OS, minutes); the pool's checkout after 30 s.
        kwargs["connect_args"] = {"connect_timeout": 10}
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        busy_ms = max(0, int(busy_timeout_s * 1000))
        event.listen(engine, "connect", lambda conn, rec: _sqlite_pragmas(conn, rec, busy_ms))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, busy_ms: int) -> None:
    # WAL lets the API read while a worker writes; the busy timeout absorbs lock waits
    # between the API and worker processes instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit survives any
    # process crash (only a power loss can undo the last ones), and costs no fsync.
    # SQLite is the single-machine default; production runs PostgreSQL.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
