"""Pydantic's validation errors as readable problems: the one formatter of their locations.

The API (api/rawjob.py), the settings' error line (cli/failures.py) and the tables read from
users' files (below) each word a problem their way from the same (where, message) pairs.
"""

from __future__ import annotations

from collections.abc import Collection

from pydantic import ValidationError


def problems(
    error: ValidationError,
    *,
    limit: int | None = None,
    drop: Collection[str | int] = (),
    plain: bool = False,
) -> list[tuple[str, str]]:
    """(where, message) of the first ``limit`` problems (all when None).

    ``where`` is the dotted location without the parts in ``drop`` ('' at the top level);
    ``plain`` removes pydantic's "Value error, " before the message of a validator's ValueError.
    """
    found = []
    for item in error.errors(include_url=False, include_input=False)[:limit]:
        where = ".".join(str(part) for part in item["loc"] if part not in drop)
        message = str(item["msg"])
        found.append((where, message.removeprefix("Value error, ") if plain else message))
    return found


def describe_errors(error: ValidationError, what: str, source: str) -> str:
    """One line per problem, naming where in the table it is."""
    lines = [
        f"  {where or '(top level)'}: {message}" for where, message in problems(error, plain=True)
    ]
    return f"invalid {what} ({source}):\n" + "\n".join(lines)
