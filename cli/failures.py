"""Operator-facing errors: one line naming the cause and the fix, instead of a traceback.

`visionq` commands let these exceptions rise; cli/main.py's main() turns them into a
line on stderr and exit code 1. Only the exception's kind and its driver's first line are
shown: a SQL error's statement and parameters (an API key's hash, for instance) never are.
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_settings import SettingsError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, NoSuchModuleError

# How a missing table reads on each backend (SQLite; PostgreSQL's UndefinedTable).
_NO_TABLE = ("no such table", "does not exist")


def _database_url() -> str:
    """The configured database URL, password hidden; a placeholder if settings fail too."""
    from models.settings import get_settings, redact_url

    try:
        return redact_url(get_settings().database_url)
    except Exception:  # the settings themselves are broken: the URL is not the point here
        return "VISIONQ_DATABASE_URL"


def _first_line(error: BaseException | None) -> str:
    text = str(error or "").strip()
    return text.splitlines()[0] if text else type(error).__name__


def _settings_line(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(item) for item in error["loc"])
        name = f"VISIONQ_{where.upper()}" if where else "a setting"
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{name}: {message}")
    return f"invalid setting {'; '.join(parts)}. Fix it in the environment (or .env) and run again."


def _database_line(exc: DBAPIError) -> str:
    cause = _first_line(exc.orig)
    url = _database_url()
    if any(marker in cause.lower() for marker in _NO_TABLE):
        return f"the database {url} has no visionq schema ({cause}): run `visionq db upgrade`."
    return (
        f"cannot use the database {url}: {cause}. Check VISIONQ_DATABASE_URL and that the "
        "database server is running."
    )


def explain(exc: BaseException) -> str | None:
    """The one-line message for an operator error, or None for a real bug (re-raised)."""
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return _settings_line(exc)
    if isinstance(exc, SettingsError):
        # pydantic-settings could not decode a value (it names the field in its message).
        return f"invalid setting: {exc}. Fix it in the environment (or .env) and run again."
    if isinstance(exc, DBAPIError):
        return _database_line(exc)
    if isinstance(exc, NoSuchModuleError):
        return f"{exc}: check the scheme of VISIONQ_DATABASE_URL (sqlite:/// or postgresql://)."
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return (
            f"cannot reach Redis: {_first_line(exc)}. Check VISIONQ_REDIS_URL and that Redis is "
            "running."
        )
    return None
