"""Parse command lines with the real CLI parsers, without running them.

Used to check that commands written in files (docker-compose.yml, the Dockerfile, the
README) are real commands with valid options.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
import pytest
import typer


# Typer vendors its own copy of click (typer._click), so commands and contexts are handled
# by duck typing: Any, not click.Command / click.Context.
def is_group(command: Any) -> bool:
    return callable(getattr(command, "resolve_command", None))


def _remaining(ctx: Any) -> list[str]:
    """The words a group left for its subcommand (click >= 8.2 and typer's copy keep the
    first in _protected_args, older click in protected_args, click 9 all in args)."""
    protected = getattr(ctx, "_protected_args", None)
    if protected is None:
        protected = getattr(ctx, "protected_args", [])
    return [*protected, *ctx.args]


def click_parse(command: Any, argv: Sequence[str]) -> Any:
    """Parse argv (argv[0] = program) down to the leaf command and return its context.

    Only make_context is called, never a callback: an unknown command or option, a bad
    value or a missing argument raises the parser's UsageError.
    """
    ctx = command.make_context(argv[0], list(argv[1:]), resilient_parsing=False)
    while is_group(command):
        rest = _remaining(ctx)
        if not rest:
            raise click.UsageError(f"{ctx.command_path}: missing command")
        sub_name, sub, sub_args = command.resolve_command(ctx, rest)
        assert sub is not None and sub_name is not None
        command = sub
        ctx = sub.make_context(sub_name, sub_args, parent=ctx, resilient_parsing=False)
    return ctx


def parse_visionq(argv: Sequence[str]) -> Any:
    from visionq.cli.main import app

    assert argv[0] == "visionq"
    return click_parse(typer.main.get_command(app), argv)


def parse_celery(argv: Sequence[str]) -> Any:
    assert argv[0] == "celery"
    if "flower" in argv:
        pytest.importorskip("flower", reason="flower (the `ops` extra) is not installed")
    from celery.bin.celery import celery

    return click_parse(celery, argv)
