"""`visionq emulator`: the typer face of the emulator's one option table (emulator.options)."""

from __future__ import annotations

import inspect
from typing import Any, Literal, Optional

import typer

from visionq.emulator.options import OPTIONS, Option


def _parameter(option: Option) -> inspect.Parameter:
    kind: Any = option.kind
    extra: dict[str, Any] = {}
    if option.choices is not None and option.kind is int:
        extra.update(min=min(option.choices), max=max(option.choices))
    elif option.choices is not None:
        kind = Literal[option.choices]  # typer offers these as the option's choices
    if option.repeat:
        annotation: Any = list[kind]
    elif option.kind is bool or option.default is not None:
        annotation = kind
    else:
        annotation = Optional[kind]  # noqa: UP045 (a runtime object, not an annotation)
    info = typer.Option(
        option.default, option.name, help=option.help, metavar=option.metavar, **extra
    )
    return inspect.Parameter(
        option.dest, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation
    )


def run_emulator(**values: Any) -> None:
    """Serve the Gemini API emulator (synthetic answers).

    For tests and offline demos. The fault and quota options apply to
    generateContent; they can also be changed while it runs with
    POST /_emulator/faults.
    """
    from visionq.emulator.options import config_from_options
    from visionq.emulator.server import run
    from visionq.models.logs import logging_config
    from visionq.models.settings import get_settings

    try:
        config = config_from_options(values)
    except ValueError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    # VISIONQ_LOG_FORMAT applies here too (the emulator itself never reads visionq settings).
    run(
        config,
        host=values["host"],
        port=values["port"],
        log_config=logging_config(get_settings().log_format),
    )


# Typer reads a command's options from its signature: this one is built from the table.
run_emulator.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [_parameter(option) for option in OPTIONS], return_annotation=None
)
