"""Readable messages for invalid tables (token rules, prices) read from users' files."""

from __future__ import annotations

from pydantic import ValidationError


def describe_errors(error: ValidationError, what: str, source: str) -> str:
    """One line per problem, naming where in the table it is."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return f"invalid {what} ({source}):\n" + "\n".join(lines)
