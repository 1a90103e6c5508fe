"""User commands: submit, estimate, status, wait, result, jobs, cancel. HTTP only, via client/.

submit lives in cli/submit.py, estimate in cli/estimate_cmd.py, --out in cli/outputs.py;
the options and helpers they share in cli/common.py.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from visionq.cli.common import (
    JsonOption,
    KeyOption,
    UrlOption,
    client_for,
    die,
    dump,
    print_json,
    wait_for,
)
from visionq.cli.estimate_cmd import estimate
from visionq.cli.render import detections_table, jobs_table, summary
from visionq.cli.submit import show_finished, submit
from visionq.client import DEFAULT_URL, PAGE_SIZE_MIN, Job
from visionq.vision.task_registry import rendering


def wait(
    job_ids: Annotated[list[str], typer.Argument(help="Job ids.", show_default=False)],
    timeout: Annotated[
        float | None,
        typer.Option(help="Stop waiting after this many seconds (exit 1, naming those left)."),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Wait for jobs to end and show their results.

    Exit code 1 if any did not succeed or is still running.
    """
    with client_for(url, api_key) as client:
        found = wait_for(client, job_ids, timeout, quiet=as_json)
    show_finished(found, None, out=None, as_json=as_json)


def status(
    job_ids: Annotated[list[str], typer.Argument(help="Job ids.", show_default=False)],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the status of jobs.

    The tier column reads asked→lane (served): e.g. auto→batch, flex (standard).
    """
    with client_for(url, api_key) as client:
        jobs = [client.job(job_id) for job_id in job_ids]
    if as_json:
        print_json([dump(job) for job in jobs])
    else:
        Console().print(jobs_table(jobs))


def result(
    job_id: Annotated[str, typer.Argument(help="Job id.", show_default=False)],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a job's result (or its error)."""
    with client_for(url, api_key) as client:
        job = client.job(job_id)
    if as_json:
        print_json(dump(job))
        return
    console = Console()
    if job.status != "succeeded":
        message = f"job {job.id} is {job.status}"
        if job.error is not None:
            message += f": {job.error.code}: {job.error.message}"
        die(message)
    if rendering(job.task) == "objects":
        console.print(detections_table(job))
    else:
        console.print(summary(job, width=10_000), markup=False, highlight=False, soft_wrap=True)


def jobs(
    status_filter: Annotated[
        str | None,
        typer.Option("--status", help="queued, running, succeeded, failed or cancelled."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many jobs to show.")] = 20,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List your jobs, newest first.

    The tier column reads asked→lane (served): e.g. auto→batch, flex (standard).
    """
    with client_for(url, api_key) as client:
        found: list[Job] = []
        # Pages no larger than every API accepts (VISIONQ_PAGE_SIZE_MAX is at least this).
        for job in client.iter_jobs(status=status_filter, page_size=min(limit, PAGE_SIZE_MIN)):
            found.append(job)
            if len(found) >= limit:
                break
    if as_json:
        print_json([dump(job) for job in found])
    else:
        Console().print(jobs_table(found))


def cancel(
    job_id: Annotated[str, typer.Argument(help="Job id.", show_default=False)],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a queued or running job.

    A job that already ended is left as it is: the command says so
    ("already succeeded; nothing to cancel") and exits 0.
    """
    with client_for(url, api_key) as client:
        job = client.job(job_id)
        ended = job.done
        if not ended:
            job = client.cancel(job.id)
    if as_json:
        print_json(dump(job))
    elif ended:
        typer.echo(f"job {job.id} already {job.status}; nothing to cancel")
    else:
        typer.echo(f"{job.id} {job.status}")


def register(app: typer.Typer) -> None:
    """Add the user commands to the `visionq` app."""
    for command in (submit, estimate, status, wait, result, jobs, cancel):
        app.command()(command)
