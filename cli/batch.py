"""`visionq batch`: run a folder or a manifest as one batch, follow it, export it, re-run it.

HTTP only, through client.batches. A batch is named by its id or by its name (the CLI asks
GET /v1/batches?name= for a name).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import uuid
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from visionq.cli.batch_failures import codes_text, error_codes, next_steps
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
from visionq.cli.options import (
    Cache,
    Economy,
    Labels,
    MaxOutputTokens,
    MaxSide,
    Model,
    OptionArgs,
    Prompt,
    SchemaFile,
    Thinking,
    job_options,
    parse_option,
)
from visionq.client import DEFAULT_URL, Batch, VisionqClient
from visionq.vision.tasks import TaskKind

app = typer.Typer(
    help="Run a folder or a manifest as a batch; follow, export, rerun it.",
    no_args_is_help=True,
)

BatchRef = Annotated[str, typer.Argument(metavar="NAME|ID", help="The batch's name or id.")]


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


def resolve(client: VisionqClient, ref: str) -> Batch:
    """The batch ``ref`` names: an id (a UUID), else a name (die if there is none)."""
    if _is_uuid(ref):
        return client.batches.get(ref)
    found = client.batches.find(ref)
    if found is None:
        die(f"no batch named {ref!r} for your tenant; list them: visionq batch list")
    return client.batches.get(found.id)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def _dump(batch: Batch) -> dict[str, Any]:
    return batch.model_dump(mode="json", by_alias=True)


@app.command("run")
def run(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH",
            help="Image files, folders (walked; files that are not images are skipped) or "
            "manifests (.jsonl/.csv: one item per line, key, image path or URL, overrides).",
            show_default=False,
        ),
    ],
    task: Annotated[TaskKind, typer.Option("--task", "-t", help="What to do with each item.")],
    name: Annotated[
        str | None,
        typer.Option(
            help="The batch's name (default: from the first PATH, the task and a hash of the "
            "PATHs and options: the same command finds the same batch, to resume).",
            show_default=False,
        ),
    ] = None,
    prompt: Prompt = None,
    labels: Labels = None,
    model: Model = None,
    schema: SchemaFile = None,
    option: OptionArgs = None,
    max_output_tokens: MaxOutputTokens = None,
    thinking: Thinking = None,
    max_side: MaxSide = None,
    cache: Cache = True,
    economy: Economy = False,
    parallel: Annotated[int, typer.Option(min=1, max=32, help="Chunks uploaded at once.")] = 4,
    chunk: Annotated[
        int,
        typer.Option(
            min=1,
            max=5000,
            help="Items per upload request (at most 32 MB of files each); lowered to the "
            "API's per-call limit when it refuses more (the run goes on).",
        ),
    ] = 200,
    wait: Annotated[
        bool,
        typer.Option("--wait", "-w", help="Wait for every item to end, then show a summary."),
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: stop waiting after this many seconds.")
    ] = None,
    skipped: Annotated[
        Path | None,
        typer.Option(help="Write every skipped file (not an image...) here, one a line."),
    ] = None,
    rejected: Annotated[
        Path | None,
        typer.Option(
            help="Write every item the API rejected here, one JSON object a line (key, code, "
            "message, input). Default: NAME.rejected.jsonl in the current folder, written only "
            "if an item is rejected.",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run every image of PATH... as one batch; run again to resume.

    Folders are walked recursively: every file is read, images are recognised
    by their bytes and the others are listed as skipped. An item's key is its
    path relative to the PATHs' common folder (a manifest's key field, else its
    image as written). Progress (uploaded, done, failed, cost, ETA) on stderr.
    Ctrl-C stops the upload: the items added keep running, and the same
    command run again resumes it; no image is uploaded twice, no item run
    twice. Items the API rejects are listed in --rejected FILE. Exit code: 0
    done, 1 if an item was rejected (or, with --wait, failed; the summary
    then counts them by error code and says how to re-run them), 130 if
    interrupted.
    """
    from visionq.cli.batch_flow import start_run

    options = job_options(
        option, max_output_tokens=max_output_tokens, thinking=thinking, max_side=max_side,
        cache=cache, economy=economy,
    )  # fmt: skip
    start_run(
        paths, task=task, name=name, prompt=prompt, labels=labels, model=model,
        schema_file=schema, options=options, parallel=parallel, chunk=chunk, wait=wait,
        timeout=timeout, skipped=skipped, rejected=rejected, url=url, api_key=api_key,
        as_json=as_json,
    )  # fmt: skip


@app.command("status")
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

    With --wait, exit code 1 if an item failed, was cancelled or expired.
    """
    from visionq.cli.batch_flow import follow

    with client_for(url, api_key) as client:
        batch = resolve(client, ref)
        finished = True
        if wait:
            batch, finished = follow(client, batch, counts=None, timeout=timeout)
        if as_json:
            print_json(_dump(batch))
        else:
            Console().print(summary_table(batch, None, None))
        for line in next_steps(client, batch):
            say(line)
    if wait and not finished:
        say(f"--timeout expired; the batch keeps running: visionq batch status {batch.name}")
        raise typer.Exit(1)
    if wait and ended_badly(batch):
        raise typer.Exit(1)


@app.command("list")
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
        print_json([_dump(batch) for batch in found])
    elif found:
        for line in batches_lines(found):
            typer.echo(line)
    else:
        say("no batches")


@app.command("close")
def close(
    ref: BatchRef, url: UrlOption = DEFAULT_URL, api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Close a batch: no more items; those in it run on."""
    with client_for(url, api_key) as client:
        batch = client.batches.close(resolve(client, ref).id)
    _show_state(batch, as_json)


@app.command("cancel")
def cancel(
    ref: BatchRef, url: UrlOption = DEFAULT_URL, api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Cancel a batch: its queued items never run.

    Items already running finish (their calls are paid); the budget held for
    the cancelled ones is released.
    """
    with client_for(url, api_key) as client:
        batch = client.batches.cancel(resolve(client, ref).id)
    _show_state(batch, as_json)


def _show_state(batch: Batch, as_json: bool) -> None:
    if as_json:
        print_json(_dump(batch))
    else:
        typer.echo(f"batch {batch.name} ({batch.id}) {batch.state}")


@app.command("rerun")
def rerun(
    ref: BatchRef,
    error_code: Annotated[
        list[str] | None,
        typer.Option(
            "--error-code",
            help="Only items that failed with this code (repeatable).",
            show_default=False,
        ),
    ] = None,
    include_cancelled: Annotated[bool, typer.Option(help="Also re-run cancelled items.")] = False,
    model: Annotated[
        str | None, typer.Option(help="Run the new jobs on this model.", show_default=False)
    ] = None,
    option: OptionArgs = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give the failed items of a batch new jobs.

    The old jobs and their attempts stay; each item then points at its new job.
    --option values are merged over each old job's options.
    """
    options = dict(parse_option(text) for text in option or [])
    statuses = ["failed", "cancelled"] if include_cancelled else ["failed"]
    with client_for(url, api_key) as client:
        batch = resolve(client, ref)
        result = client.batches.rerun(
            batch.id, statuses=statuses, error_codes=error_code, model=model,
            options=options or None,
        )  # fmt: skip
        if as_json:
            print_json(result.model_dump(mode="json", by_alias=True))
        elif result.rerun:
            typer.echo(
                f"{result.rerun:,} item(s) of batch {batch.name} re-run; follow them: "
                f"visionq batch status {shlex.quote(batch.name)} --wait"
            )
        else:
            typer.echo(_nothing_to_rerun(client, batch, statuses, error_code))


def _nothing_to_rerun(
    client: VisionqClient, batch: Batch, statuses: list[str], asked: list[str] | None
) -> str:
    """Why a rerun matched no item: which codes the batch's items have instead."""
    text = f"nothing to re-run in batch {batch.name}: "
    codes = Counter[str]()
    for status in statuses:
        codes += error_codes(client, batch.id, status)
    if not codes:
        return text + f"no item is {' or '.join(statuses)}"
    found = codes_text(codes, sum(codes.values()))
    if asked:
        return text + (
            f"no {' or '.join(statuses)} item has error code {', '.join(asked)}; "
            f"their codes: {found}"
        )
    return text + f"the {' or '.join(statuses)} items' codes: {found}"


@app.command("export")
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
