"""`visionq dev`: the whole stack in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import shlex
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from visionq.models.settings import get_settings

if TYPE_CHECKING:
    from visionq.cli.stack import Stack


class _StopRequested(Exception):
    """SIGTERM or SIGINT arrived."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _StopRequested(signal.Signals(signum).name)


@contextmanager
def stop_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into _StopRequested, so cleanup always runs."""
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# `--redis-url` of dev and demo.
RedisUrlOption = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        help="Use this running Redis (e.g. redis://127.0.0.1:6379/15) instead of starting "
        "one; give it a database no other visionq uses.",
        show_default=False,
    ),
]


@contextmanager
def running_stack(
    console: Console, api_port: int | None, data_dir: Path, redis_url: str | None = None
) -> Iterator[Stack]:
    """Start the stack with its data in ``data_dir``, yield it, and always stop it (which
    revokes its API key); StackError ends with exit code 1."""
    from visionq.cli.stack import EMULATOR_WARNING, StackError, start_stack

    settings = get_settings()
    stack: Stack | None = None
    try:
        with stop_signals():
            try:
                if settings.gemini_key() is None:
                    console.print(
                        Panel(EMULATOR_WARNING, title="synthetic answers", style="yellow")
                    )
                stack = start_stack(
                    settings,
                    data_dir=data_dir,
                    api_port=api_port,
                    redis_url=redis_url,
                    announce=lambda line: console.print(line, highlight=False),
                )
                yield stack
            finally:
                if stack is not None:
                    console.print("stopping...", highlight=False)
                    stack.stop()
                    console.print(
                        "stopped: no process left running, its API key revoked", highlight=False
                    )
    except _StopRequested:
        pass
    except StackError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from exc


def dev(
    port: Annotated[
        int | None, typer.Option(help="API port (default 8000, or a free one if taken).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder for this stack's database, images and Redis (default: dev/ in "
            "VISIONQ_DATA_DIR); VISIONQ_DATABASE_URL, _BLOB_DIR and _REDIS_URL are not used."
        ),
    ] = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Run the whole stack in the foreground until Ctrl-C.

    Redis, the database, the API, a worker, and the emulator when no Gemini
    key is set. It prints the URLs of the API and of the web console
    (/console/, sign in with the API key it prints). Everything lives in its
    own data folder, never in your configured database; the API key it
    prints is revoked when it stops.
    """
    console = Console()
    folder = data_dir or get_settings().data_dir / "dev"
    with running_stack(console, port, folder, redis_url) as stack:
        console.print(f"api       {stack.api_url}   (docs: {stack.api_url}/docs)", highlight=False)
        console.print(console_line(stack, get_settings().console_enabled), highlight=False)
        console.print(metrics_line(stack), highlight=False)
        console.print(f"logs      {stack.run_dir}", highlight=False)
        print_ready(console, stack)
        while True:
            stack.check_alive()
            time.sleep(0.5)


def print_ready(console: Console, stack: Stack) -> None:
    """Print the commands that use the stack from another terminal.

    Each command is printed whole on one line (soft_wrap: rich would otherwise break a
    long line at the terminal's width, and pasting the broken lines would run the tail
    as a command); the note about the key goes on a comment line of its own, so that
    nothing follows the key on its line.
    """
    console.print("\nReady. Use the stack from another terminal:", highlight=False)
    lines = [
        f"  export VISIONQ_URL={stack.api_url}",
        "  # this key is revoked when the stack stops:",
        f"  export VISIONQ_API_KEY={stack.api_key}",
        "  visionq submit photo.jpg --task caption --wait",
        f"More keys for this stack: {keys_command(stack)}",
    ]
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)
    console.print("\nPress Ctrl-C to stop.", highlight=False)


def console_line(stack: Stack, enabled: bool) -> str:
    """Where the web console is (sign in with the key printed below), or why it is not."""
    if not enabled:
        return "console   off (VISIONQ_CONSOLE_ENABLED=false)"
    return f"console   {stack.api_url}/console/   (sign in with the VISIONQ_API_KEY below)"


def metrics_line(stack: Stack) -> str:
    """Where the stack's metrics are: the API's /metrics and the worker's port (a free one
    on 127.0.0.1 unless VISIONQ_WORKER_METRICS_PORT names one)."""
    urls = stack.builder.metrics_urls if stack.builder is not None else {}
    worker = urls.get("worker", "off (VISIONQ_WORKER_METRICS_PORT=0)")
    return f"metrics   {stack.api_url}/metrics   worker: {worker}"


def keys_command(stack: Stack) -> str:
    """The shell command that makes another API key in this stack's own database.

    It names the database itself: VISIONQ_DATA_DIR alone would not do when the user's
    shell sets VISIONQ_DATABASE_URL, which then wins (models/settings.py derives the
    database from the data folder only when the URL is unset).
    """
    env = {"VISIONQ_DATABASE_URL": stack.database_url, "VISIONQ_DATA_DIR": str(stack.data_dir)}
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
    return f"{assignments} visionq keys create NAME"
