"""`visionq --help` (and every group's) at 80 columns: each command's summary is one short
sentence on one row, never a first docstring paragraph broken mid-phrase."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer.main

from tests.unit.cli_fakes import run
from visionq.cli.main import app

# What fits beside a command's name in the help's command list at 80 columns.
SUMMARY_MAX = 64
# A help text line Rich shows as it is at 80 columns (it keeps the docstring's line breaks,
# so a longer line would be wrapped once more, leaving a word alone on a line).
LINE_MAX = 78


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def _summary(command: Any) -> str:
    return str(command.help or "").strip().split("\n\n")[0]


def test_every_commands_summary_is_one_short_sentence() -> None:
    problems = []
    for path, command in _commands(typer.main.get_command(app)):
        first = _summary(command)
        if "\n" in first or len(first) > SUMMARY_MAX or not first.endswith("."):
            problems.append(f"visionq {' '.join(path)}: {first!r}")
        long = [line for line in str(command.help or "").splitlines() if len(line) > LINE_MAX]
        problems += [f"visionq {' '.join(path)}: {line!r} is too long" for line in long]
    assert problems == []


def test_help_lists_each_command_on_one_row_at_80_columns() -> None:
    for path, command in _commands(typer.main.get_command(app)):
        subcommands = getattr(command, "commands", {})
        if not subcommands:
            continue
        shown = run(*path, "--help")
        assert shown.exit_code == 0, shown.output
        rows = shown.stdout.splitlines()
        for name, sub in subcommands.items():
            summary = _summary(sub)
            assert any(f" {name} " in row and summary in row for row in rows), (path, name)
