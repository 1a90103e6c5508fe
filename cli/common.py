"""What the user commands share: their common options, the client, errors and waiting."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from visionq.cli.render import JobProgress
from visionq.client import Job, VisionqClient, VisionqError

UrlOption = Annotated[
    str, typer.Option("--url", envvar="VISIONQ_URL", help="visionq API URL.", show_default=True)
]
KeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="VISIONQ_API_KEY", help="API key (visionq keys create).",
                 show_default=False),
]  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def stderr() -> Console:
    """The console of progress, warnings and errors (stdout stays for results)."""
    return Console(stderr=True)


def say(message: str) -> None:
    """One plain line on stderr (no markup, wrapped by the terminal, not by us)."""
    stderr().print(message, markup=False, highlight=False, soft_wrap=True)


def die(message: str, code: int = 1) -> NoReturn:
    """End the command with one ``error:`` line on stderr and exit ``code``."""
    stderr().print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def client_for(url: str, api_key: str | None) -> Iterator[VisionqClient]:
    """A client whose failures end the command with one clear line, not a traceback."""
    if not api_key:
        die("no API key: pass --api-key or set VISIONQ_API_KEY (visionq keys create NAME)")
    try:
        with VisionqClient(url, api_key) as client:
            yield client
    except VisionqError as exc:
        die(str(exc))
    except TimeoutError as exc:
        die(f"timed out: {exc}")


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def dump(job: Job) -> dict[str, Any]:
    """A job as the API's JSON."""
    return job.model_dump(mode="json")


def wait_for(
    client: VisionqClient, job_ids: Sequence[str], timeout: float | None, *, quiet: bool
) -> dict[str, Job]:
    """Every job as last seen: all ended, or, when ``timeout`` expires, some still running.

    A timeout is not an error here: the caller shows (and writes) the finished jobs and
    names the unfinished ones (exit_for).
    """
    seen: dict[str, Job] = {}

    def record(jobs: dict[str, Job]) -> None:
        seen.update(jobs)

    try:
        if quiet:
            return client.wait(job_ids, timeout=timeout, on_update=record)
        with JobProgress(stderr(), len(job_ids)) as progress:

            def update(jobs: dict[str, Job]) -> None:
                record(jobs)
                progress.update(jobs)

            return client.wait(job_ids, timeout=timeout, on_update=update)
    except TimeoutError:
        # Jobs never seen (the timeout struck before their first poll) are fetched once.
        return {job_id: seen.get(job_id) or client.job(job_id) for job_id in job_ids}


def exit_for(jobs: Sequence[Job], *, explain: bool) -> None:
    """Exit 1 if any job did not succeed, after saying why in full.

    Jobs still running (``--timeout`` expired) are named with the command that waits for them.
    """
    running = [job.id for job in jobs if not job.done]
    ended_badly = [job for job in jobs if job.done and job.status != "succeeded"]
    if not running and not ended_badly:
        return
    if explain:
        for job in ended_badly:
            reason = f"{job.error.code}: {job.error.message}" if job.error else "no reason given"
            say(f"job {job.id} {job.status}: {reason}")
        if running:
            say(
                f"{len(running)} job(s) still running when --timeout expired; wait for them "
                f"with: visionq wait {' '.join(running)}"
            )
    raise typer.Exit(1)
