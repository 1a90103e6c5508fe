"""`visionq batch run` from start to end: check the inputs, find or create the batch, upload
(cli/batch_run.py), then report, or follow the batch to its end with --wait."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from visionq.cli.batch_failures import next_steps
from visionq.cli.batch_files import RejectedLog, default_rejected_path, skipped_file
from visionq.cli.batch_inputs import BatchInputs, MissingFields, default_name
from visionq.cli.batch_run import SKIPPED_SHOWN, RunOutcome, Uploader
from visionq.cli.batch_view import (
    StatusLine,
    UploadCounts,
    ended_badly,
    progress_line,
    summary_table,
)
from visionq.cli.common import client_for, die, print_json, say, stderr
from visionq.cli.inputs import InputError, label_list, read_schema
from visionq.client import Batch, VisionqClient, VisionqError
from visionq.vision.tasks import TaskKind

# How often --wait asks for the batch's progress.
FOLLOW_POLL_S = 2.0


@dataclass(frozen=True)
class BatchDefaults:
    """What every item of the batch gets unless its manifest line says otherwise (the
    body of POST /v1/batches, less its name; the same ones find the same batch again)."""

    task: str
    prompt: str | None = None
    labels: list[str] | None = None
    model: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    schema: dict[str, Any] | None = None
    # 0..9 (--priority); None: the server's default, and not part of the default name.
    priority: int | None = None


def start_run(
    paths: list[Path],
    *,
    task: TaskKind,
    name: str | None,
    prompt: str | None,
    labels: str | None,
    model: str | None,
    schema_file: Path | None,
    options: dict[str, Any],
    parallel: int,
    chunk: int,
    wait: bool,
    timeout: float | None,
    skipped: Path | None,
    rejected: Path | None,
    url: str,
    api_key: str | None,
    as_json: bool,
    webhook_url: str | None = None,
    priority: int | None = None,
) -> None:
    """The whole of `visionq batch run` (see its help)."""
    started = time.monotonic()
    label_values = label_list(labels)
    inputs, schema, total = _read_inputs(paths, task, prompt, label_values, schema_file)
    if total == 0:
        die("no files found in the PATHs given; nothing was sent")
    defaults = BatchDefaults(task.value, prompt, label_values, model, options, schema, priority)
    batch_name = name or default_name(paths, **dataclasses.asdict(defaults))
    items = total - inputs.not_images
    if items == 0:
        die(f"none of the {total:,} file(s) is an image that can be sent; nothing was added")
    others = f" ({inputs.not_images:,} other file(s) to skip)" if inputs.not_images else ""
    say(
        f"batch {batch_name}: {items:,} item(s){others}; if interrupted, run the same command "
        "to resume"
    )
    rejected_log = RejectedLog(rejected or default_rejected_path(batch_name), given=bool(rejected))
    with client_for(url, api_key) as client:
        batch = open_batch(
            client, batch_name, defaults, expected_items=items, webhook_url=webhook_url
        )
        if batch.state == "closed":  # an earlier --webhook-url run added every input
            outcome = RunOutcome(UploadCounts(total, existing=batch.item_count), batch=batch)
        else:
            outcome = _upload(
                client, batch, inputs, total=total, parallel=parallel, chunk=chunk,
                skipped=skipped, rejected_log=rejected_log,
            )  # fmt: skip
            batch = outcome.batch or batch
            if webhook_url is not None:
                batch = _close_for_webhook(client, batch, outcome.counts)
        if not wait:
            _finish_without_wait(client, batch, outcome.counts, as_json)
            return
        batch, finished = follow(client, batch, counts=outcome.counts, timeout=timeout)
        if as_json:
            print_json(batch.model_dump(mode="json", by_alias=True))
        else:
            Console().print(summary_table(batch, outcome.counts, time.monotonic() - started))
        for line in next_steps(client, batch):
            say(line)
    if not finished:
        say(f"--timeout expired; the batch keeps running: visionq batch status {batch.name}")
        raise typer.Exit(1)
    if ended_badly(batch) or outcome.counts.rejected:
        raise typer.Exit(1)


def _read_inputs(
    paths: list[Path],
    task: TaskKind,
    prompt: str | None,
    labels: list[str] | None,
    schema_file: Path | None,
) -> tuple[BatchInputs, dict[str, Any] | None, int]:
    """The run's inputs, its schema and its number of items, every input checked: a
    problem ends the command before anything is sent."""
    try:
        inputs = BatchInputs(paths, task, defaults={"prompt": prompt, "labels": labels})
        schema = read_schema(schema_file) if schema_file else None
        return inputs, schema, inputs.count()
    except MissingFields as exc:
        # A usage error (exit 2), told before the batch is made: made with these defaults,
        # its name would refuse the same run with the option added.
        raise typer.BadParameter(f"{exc}; nothing was sent", param_hint=exc.options) from None
    except InputError as exc:
        die(f"{str(exc).rstrip('.')}; nothing was sent")


def open_batch(
    client: VisionqClient,
    name: str,
    defaults: BatchDefaults,
    *,
    expected_items: int,
    webhook_url: str | None = None,
) -> Batch:
    """The batch ``name``: created, or found again with the same defaults (a resumed run).

    A batch of that name with other defaults, or one closed or cancelled, ends the command
    saying what to do instead.
    """
    try:
        batch = client.batches.create(
            name, task=defaults.task, prompt=defaults.prompt, labels=defaults.labels,
            model=defaults.model, options=defaults.options, schema=defaults.schema,
            expected_items=expected_items, webhook_url=webhook_url, priority=defaults.priority,
        )  # fmt: skip
    except VisionqError as exc:
        if exc.code != "batch_name_taken":
            raise
        # Said in the CLI's own words, not after the API's message: that one gives the same
        # advice in the API's field names (the run's options name them here).
        die(
            f"a batch named {name!r} exists with other defaults: this run's task, prompt, "
            "labels, model, options, schema, --priority or --webhook-url differ from that "
            "batch's; run it with the same ones to resume it, or give another --name"
        )
    if batch.state == "cancelled":
        die(f"batch {name} was cancelled; to run these files again, give another --name")
    if batch.state == "closed" and webhook_url is not None and batch.item_count >= expected_items:
        # Closed by an earlier run of this command once every input was in (--webhook-url):
        # the same command again follows it, as it would an open batch with nothing to add.
        say(f"batch {name} ({batch.id}) is closed with every input in it: nothing to add")
        return batch
    if batch.state == "closed":
        die(
            f"batch {name} is closed (no more items); to add files, give another --name; to "
            f"run its failed items again: visionq batch rerun {name}"
        )
    if batch.item_count:
        say(f"resuming batch {name} ({batch.id}): {batch.item_count:,} item(s) already in it")
    return batch


def _upload(
    client: VisionqClient,
    batch: Batch,
    inputs: BatchInputs,
    *,
    total: int,
    parallel: int,
    chunk: int,
    skipped: Path | None,
    rejected_log: RejectedLog,
) -> RunOutcome:
    """Add every input to ``batch`` (cli/batch_run.py); an interrupted or failed upload
    ends the command (_report_upload)."""
    with skipped_file(skipped) as skipped_handle:
        uploader = Uploader(
            client, batch, total=total, parallel=parallel, chunk=chunk, console=stderr(),
            skipped_file=skipped_handle, rejected_log=rejected_log,
        )  # fmt: skip
        try:
            outcome = uploader.run(inputs)
        finally:
            rejected_log.close()
    if rejected_log.count:
        say(rejected_log.summary())
    _report_upload(outcome, uploader, outcome.batch or batch, skipped)
    return outcome


def _report_upload(
    outcome: RunOutcome, uploader: Uploader, batch: Batch, skipped: Path | None
) -> None:
    """What the upload came to, when it did not end normally: interrupted (exit 130) or
    stopped by an error (exit 1), with how to resume."""
    counts = outcome.counts
    if counts.skipped > SKIPPED_SHOWN:
        where = f"all listed in {skipped}" if skipped else "list them all with --skipped FILE"
        say(f"{counts.skipped:,} file(s) skipped, the first {SKIPPED_SHOWN} shown; {where}")
    if outcome.error is not None:
        say(f"error: {outcome.error}")
        say(
            f"stopped: {uploader.held_text()}; they keep running; fix the cause and run the "
            "same command to resume"
        )
        raise typer.Exit(1)
    if outcome.interrupted:
        say(uploader.interrupted_text())
        raise typer.Exit(130)
    if counts.skipped and counts.skipped == counts.total:
        die(f"none of the {counts.total:,} file(s) is an image that can be sent; nothing was added")


def _close_for_webhook(client: VisionqClient, batch: Batch, counts: UploadCounts) -> Batch:
    """With --webhook-url, the batch once every input is in it: closed, since batch.completed
    is sent only for a closed batch (an open one may still get items). Left open when an item
    was rejected, so that the same command can add it once fixed."""
    if counts.rejected:
        say(
            f"batch {batch.name} left open ({counts.rejected:,} item(s) rejected), so "
            f"batch.completed is not sent yet: fix them and run the same command, or close it "
            f"to send it when its items end: visionq batch close {batch.name}"
        )
        return batch
    closed = client.batches.close(batch.id)
    say(f"batch {batch.name} closed: batch.completed goes to --webhook-url when every item ended")
    return closed


def _finish_without_wait(
    client: VisionqClient, batch: Batch, counts: UploadCounts, as_json: bool
) -> None:
    if as_json:
        print_json(client.batches.get(batch.id).model_dump(mode="json", by_alias=True))
    else:
        typer.echo(
            f"batch {batch.name} ({batch.id}): {counts.created:,} added, {counts.existing:,} "
            f"already there, {counts.rejected:,} rejected, {counts.skipped:,} skipped; "
            f"follow it: visionq batch status {batch.name} --wait"
        )
    if counts.rejected:
        raise typer.Exit(1)


def follow(
    client: VisionqClient, batch: Batch, *, counts: UploadCounts | None, timeout: float | None
) -> tuple[Batch, bool]:
    """Poll the batch until none of its items is queued or running, showing progress on
    stderr; the batch as last seen and whether it finished (False: ``timeout`` expired).
    Ctrl-C exits 130, the batch running on."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        with StatusLine(stderr()) as line:
            while True:
                with contextlib.suppress(VisionqError):  # transient: asked again next round
                    batch = _get(client, batch.id)
                progress = batch.progress
                line.update(progress_line(counts, progress))
                if progress is not None and progress.unfinished == 0:
                    return batch, True
                if deadline is not None and time.monotonic() >= deadline:
                    return batch, False
                time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        say(f"interrupted; the batch keeps running: visionq batch status {batch.name}")
        raise typer.Exit(130) from None


def _get(client: VisionqClient, batch_id: str) -> Batch:
    try:
        return client.batches.get(batch_id)
    except VisionqError as exc:
        if exc.transient:
            raise
        die(str(exc))
