"""Operator-facing errors: one line naming the cause and the fix, instead of a traceback.

`visionq` commands let these exceptions rise; cli/main.py's main() turns them into a
line on stderr and exit code 1. Only the exception's kind and its driver's first line are
shown: a SQL error's statement and parameters (an API key's hash, for instance) never are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import ArgumentError, DBAPIError

from visionq.models.settings import ConfigurationError
from visionq.vision.validation import problems

_FIX_SETTINGS = "Fix it in the environment (or .env) and run again."
# How a missing table reads on each backend (SQLite; PostgreSQL's UndefinedTable).
_NO_TABLE = ("no such table", "does not exist")


def _database_url() -> str:
    """The configured database URL, password hidden; a placeholder if settings fail too."""
    from visionq.models.settings import get_settings, redact_url

    try:
        return redact_url(get_settings().database_url)
    except Exception:  # the settings themselves are broken: the URL is not the point here
        return "VISIONQ_DATABASE_URL"


def _first_line(error: BaseException | None) -> str:
    text = str(error or "").strip()
    return text.splitlines()[0] if text else type(error).__name__


def _settings_line(exc: ValidationError) -> str:
    # A check across settings (no location) names the variables in its message.
    parts = [
        f"VISIONQ_{where.upper()}: {message}" if where else message
        for where, message in problems(exc, plain=True)
    ]
    return f"invalid settings: {'; '.join(parts)}. {_FIX_SETTINGS}"


def _database_line(exc: DBAPIError) -> str:
    cause = _first_line(exc.orig)
    url = _database_url()
    if any(marker in cause.lower() for marker in _NO_TABLE):
        return f"the database {url} has no visionq schema ({cause}): run `visionq db upgrade`."
    return (
        f"cannot use the database {url}: {cause}. Check VISIONQ_DATABASE_URL and that the "
        "database server is running."
    )


def _os_line(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return (
        f"{exc.strerror or exc}{where}: check the paths in your settings (VISIONQ_DATA_DIR, "
        "VISIONQ_DATABASE_URL, VISIONQ_BLOB_DIR, VISIONQ_MODELS_FILE) and their permissions."
    )


def _url_line(exc: ArgumentError) -> str:
    return (
        f"VISIONQ_DATABASE_URL is not a usable database URL ({_first_line(exc)}): use "
        "sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB."
    )


def _redis_line(exc: Exception) -> str:
    return (
        f"cannot reach Redis: {_first_line(exc)}. Check VISIONQ_REDIS_URL and that Redis is "
        "running."
    )


def _configuration_line(exc: Exception) -> str:
    # pydantic-settings' SettingsError names the variable it could not decode.
    return f"invalid settings: {exc}. {_FIX_SETTINGS}"


# Checked in order: the first kind an exception is decides its line.
_LINES: list[tuple[type[Exception] | tuple[type[Exception], ...], Callable[[Any], str]]] = [
    ((SettingsError, ConfigurationError), _configuration_line),
    (DBAPIError, _database_line),
    (ArgumentError, _url_line),  # an unparsable URL, or a driver we do not ship
    ((RedisConnectionError, RedisTimeoutError), _redis_line),
]


def explain(exc: BaseException) -> str | None:
    """The one-line message for an operator error, or None for a real bug (re-raised)."""
    if isinstance(exc, ValidationError):
        return _settings_line(exc) if exc.title == "Settings" else None
    for kinds, line in _LINES:
        if isinstance(exc, kinds):
            return line(exc)
    if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
        return _os_line(exc)
    return None
