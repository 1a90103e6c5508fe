"""`visionq retry`: new jobs from finished ones' stored inputs (POST /v1/jobs/{id}/retry)."""

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
    exit_for,
    print_json,
    say,
    wait_for,
)
from visionq.cli.render import results_view
from visionq.client import DEFAULT_URL, PAGE_SIZE_MIN, Job, VisionqClient, VisionqError
from visionq.models.tables import TERMINAL_STATUSES, JobStatus

# The statuses a job can be retried from: the finished ones, declared once in models.tables.
FINISHED = TERMINAL_STATUSES
# With --status, the refusals that are no error of the caller's: the job's batch decides.
SKIPPED = {
    "job_superseded": "a newer job replaced each in its batch item (that one is retried "
    "when it matches --status; or re-run the batch: visionq batch rerun NAME)",
    "batch_cancelled": "their batch is cancelled (submit the images again for this work)",
}


def finished_status(value: str) -> JobStatus:
    """``--status``'s value as a JobStatus; BadParameter unless it is a finished one."""
    status = JobStatus(value) if value in set(JobStatus) else None
    if status is None or status not in TERMINAL_STATUSES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(FINISHED)}")
    return status


def retry(
    job_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Finished jobs to retry (ids or unique prefixes).", show_default=False),
    ] = None,
    status: Annotated[
        JobStatus | None,
        typer.Option(
            "--status",
            parser=finished_status,
            metavar="|".join(FINISHED),
            help="Retry your newest jobs in this status instead of IDs.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, help="With --status: retry at most this many jobs.")
    ] = 100,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the new jobs to end.")] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: stop waiting after this many seconds.")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run finished jobs again as new jobs; prints OLD -> NEW.

    Same images, task, prompt, labels, model, options and schema;
    each new job's retry_of names the old one.

    Each retry's Idempotency-Key comes from the old job's id, so running the
    command again returns the same new jobs instead of paying twice (within
    the server's idempotency retention). To retry a retry, give the new id.

    A batch item's latest job is retried through its batch: the new job joins
    it, so `visionq batch rerun` does not run the item again. With --status,
    older batch jobs a newer one replaced (and cancelled batches' jobs) are
    skipped, counted on one line.
    Exit code 1 if a job could not be retried or, with --wait, did not succeed.
    """
    if bool(job_ids) == (status is not None):
        die("give job ids or --status (e.g. visionq retry --status failed), not both")
    made: list[Job] = []
    refused = 0
    skipped = dict.fromkeys(SKIPPED, 0)
    with client_for(url, api_key) as client:
        sources = job_ids or _jobs_in(client, status, limit)
        for source in sources:
            try:
                new = _retry_one(client, source)
            except VisionqError as exc:
                if status is not None and exc.code in skipped:
                    skipped[exc.code] += 1  # picked by status, not asked for by id
                    continue
                refused += 1
                say(f"error: {source}: {exc.message}")
                continue
            made.append(new)
            if not as_json:
                typer.echo(f"{new.retry_of} -> {new.id} {new.status}")
        for code, count in skipped.items():
            if count:
                say(f"skipped {count} {status} job(s): {SKIPPED[code]}")
        ids = [job.id for job in made]
        found = wait_for(client, ids, timeout, quiet=as_json) if wait and ids else {}
    if as_json:
        print_json([dump(found.get(job.id, job)) for job in made])
    elif found:
        Console().print(results_view(found.values()))
    if wait:
        exit_for(list(found.values()), explain=not as_json)
    if refused:
        raise typer.Exit(1)


def _jobs_in(client: VisionqClient, status: JobStatus | None, limit: int) -> list[str]:
    """The ids of the caller's newest ``limit`` jobs in ``status``; says when more remain."""
    found: list[str] = []
    # Pages no larger than every API accepts (VISIONQ_PAGE_SIZE_MAX is at least this).
    for job in client.iter_jobs(status=status, page_size=min(limit + 1, PAGE_SIZE_MIN)):
        if len(found) == limit:
            say(f"more {status} jobs remain; retried the newest {limit} (raise --limit)")
            break
        found.append(job.id)
    if not found:
        say(f"no {status} jobs to retry")
    return found


def _retry_one(client: VisionqClient, source: str) -> Job:
    """The retry of job ``source`` (an id or a prefix), under a key made from its full id."""
    full_id = client.job(source).id
    return client.retry(full_id, idempotency_key=f"vq-retry-{full_id}")
