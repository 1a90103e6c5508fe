"""`visionq batch`: run a folder or a manifest as one batch, follow it, export it, re-run it.

HTTP only, through client.batches. A batch is named by its id or by its name
(cli/batch_ref.py); the read-only commands (status, list, export) are in cli/batch_show.py.
"""

from __future__ import annotations

import shlex
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from visionq.cli import batch_show
from visionq.cli.batch_failures import codes_text, error_codes
from visionq.cli.batch_ref import BatchRef, dump_batch, resolve
from visionq.cli.common import JsonOption, KeyOption, UrlOption, client_for, print_json
from visionq.cli.options import (
    BatchPriorityOption,
    BatchWebhookUrlOption,
    Cache,
    DeadlineOption,
    Economy,
    Labels,
    MaxOutputTokens,
    MaxSide,
    Model,
    OptionArgs,
    Prompt,
    SchemaFile,
    Thinking,
    TierOption,
    job_options,
    parse_option,
)
from visionq.client import DEFAULT_URL, Batch, VisionqClient
from visionq.vision.tasks import TaskKind

app = typer.Typer(
    help="Run a folder or a manifest as a batch; follow, export, rerun it.",
    no_args_is_help=True,
)


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
    tier: TierOption = None,
    deadline: DeadlineOption = None,
    webhook_url: BatchWebhookUrlOption = None,
    priority: BatchPriorityOption = None,
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
        cache=cache, economy=economy, tier=tier, deadline=deadline,
    )  # fmt: skip
    start_run(
        paths, task=task, name=name, prompt=prompt, labels=labels, model=model,
        schema_file=schema, options=options, parallel=parallel, chunk=chunk, wait=wait,
        timeout=timeout, skipped=skipped, rejected=rejected, url=url, api_key=api_key,
        as_json=as_json, webhook_url=webhook_url, priority=priority,
    )  # fmt: skip


# The read-only commands (cli/batch_show.py), registered here so that `visionq batch --help`
# lists them in this order: run, status, list, close, cancel, rerun, export.
app.command("status")(batch_show.status)
app.command("list")(batch_show.list_batches)


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
        print_json(dump_batch(batch))
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


app.command("export")(batch_show.export)
