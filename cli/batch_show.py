"""The read-only `visionq batch` commands: status, list, export.

Registered on the `visionq batch` app by cli/batch.py, in the order its help lists them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from visionq.cli.batch_failures import next_steps
from visionq.cli.batch_ref import BatchRef, dump_batch, resolve
from visionq.cli.batch_view import batches_lines, ended_badly, summary_table
from visionq.cli.common import (
    JsonOption,
    KeyOption,
    UrlOption,
    client_for,
    die,
    print_json,
    say,
)
from visionq.client import DEFAULT_URL, Batch


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


class ItemStatus(StrEnum):
    """An item's status (its latest job's; expired: retention deleted that job)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class BatchState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"


def status(
    ref: BatchRef,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait for every item to end.")] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: stop waiting after this many seconds.")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a batch's progress: counts, tokens, cost, estimate, ETA.

    Items in the Gemini Batch lane (tier batch) show how many wait to be
    gathered and each Gemini batch they wait in: its state, lines answered
    and when it last progressed.
    With --wait, exit code 1 if an item failed, was cancelled or expired.
    """
    from visionq.cli.batch_flow import follow

    with client_for(url, api_key) as client:
        batch = resolve(client, ref)
        finished = True
        if wait:
            batch, finished = follow(client, batch, counts=None, timeout=timeout)
        if as_json:
            print_json(dump_batch(batch))
        else:
            Console().print(summary_table(batch, None, None))
        for line in next_steps(client, batch):
            say(line)
    if wait and not finished:
        say(f"--timeout expired; the batch keeps running: visionq batch status {batch.name}")
        raise typer.Exit(1)
    if wait and ended_badly(batch):
        raise typer.Exit(1)


def list_batches(
    state: Annotated[
        BatchState | None, typer.Option(help="Only batches in this state.", show_default=False)
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Only the batch of this name.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List batches, newest first."""
    found: list[Batch] = []
    with client_for(url, api_key) as client:
        cursor = None
        while len(found) < limit:
            page = client.batches.list(
                state=state.value if state else None, name=name,
                limit=min(100, limit - len(found)), cursor=cursor,
            )  # fmt: skip
            found += page.batches
            cursor = page.next_cursor
            if not cursor:
                break
    if as_json:
        print_json([dump_batch(batch) for batch in found])
    elif found:
        for line in batches_lines(found):
            typer.echo(line)
    else:
        say("no batches")


def export(
    ref: BatchRef,
    fmt: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="parquet needs --out and pyarrow.")
    ] = ExportFormat.JSONL,
    out: Annotated[
        Path | None,
        typer.Option(help="Write here (default: stdout, for jsonl and csv).", show_default=False),
    ] = None,
    item_status: Annotated[
        ItemStatus | None,
        typer.Option("--status", help="Only items of this status.", show_default=False),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """Write every item's key, status, result, error, usage and cost.

    Failed items come with their error. The file is written whole or not at
    all. Parquet needs pyarrow: pip install 'visionq\\[parquet]'.
    """
    from visionq.cli.batch_export import ParquetUnavailableError, write_parquet, write_stream

    if fmt is ExportFormat.PARQUET and out is None:
        die("--format parquet writes a file: give --out FILE")
    with client_for(url, api_key) as client:
        batch = resolve(client, ref)
        wire = "jsonl" if fmt is ExportFormat.PARQUET else fmt.value
        chunks = client.batches.export(
            batch.id, fmt=wire, status=item_status.value if item_status else None
        )
        try:
            if fmt is ExportFormat.PARQUET:
                assert out is not None
                rows = write_parquet(chunks, out)
                say(f"{rows:,} item(s) written to {out}")
            else:
                write_stream(chunks, out)
        except ParquetUnavailableError as exc:
            die(str(exc))
        except BrokenPipeError as exc:
            if out is None:
                _stdout_closed()
            die(f"cannot write {out}: {exc.strerror or exc}")
        except OSError as exc:
            die(f"cannot write {out or 'stdout'}: {exc.strerror or exc}")


def _stdout_closed() -> NoReturn:
    """stdout's reader went away (``| head -1``): stop quietly as Unix tools do, with the
    status a shell gives a tool killed by SIGPIPE (128 + 13)."""
    # Python would report the failed flush of stdout at exit: point it at /dev/null first.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(128 + signal.SIGPIPE)
