"""`visionq submit`: check every file, then submit jobs that a second run resumes, not repeats."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

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
    stderr,
    wait_for,
)
from visionq.cli.idempotency import job_key, numbered
from visionq.cli.inputs import (
    InputError,
    check_images,
    file_sha256,
    group_name,
    group_stem,
    job_groups,
    label_list,
    name_files,
    read_schema,
)
from visionq.cli.options import (
    Cache,
    DeadlineOption,
    Economy,
    Labels,
    MaxOutputTokens,
    MaxSide,
    Model,
    OptionArgs,
    PriorityOption,
    Prompt,
    SchemaFile,
    Thinking,
    TierOption,
    WebhookUrlOption,
    job_options,
)
from visionq.cli.outputs import write_outputs, written_line
from visionq.cli.render import results_view
from visionq.client import DEFAULT_URL, Job, VisionqClient, VisionqError
from visionq.vision.formats import ACCEPTED_FORMATS_TEXT
from visionq.vision.tasks import TaskKind

RESUME_HINT = (
    "run the same command again to resume: the jobs already submitted are found again by "
    "their Idempotency-Key (derived from the files and options; the API keeps keys for "
    "VISIONQ_IDEMPOTENCY_TTL_S, 48 h by default), not submitted twice"
)


# A refused --webhook-url is refused again on every run: resuming cannot help.
WEBHOOK_URL_HINT = (
    "the API refused --webhook-url, so running the same command again fails the same way: "
    "give a URL of a public http(s) host (visionq webhooks callbacks shows how callbacks are "
    "signed) or leave --webhook-url out; the URL is part of each job's Idempotency-Key, so a "
    "new one makes new jobs of the files already submitted"
)


def refuses_webhook_url(exc: VisionqError) -> bool:
    """True when the API refused the request for its webhook_url (SSRF rules or length)."""
    return "webhook_url" in exc.message and (
        exc.code.startswith("url_") or exc.code == "invalid_request"
    )


FRESH_HINT = (
    "this run used --new, so running the command again submits every file anew (billed "
    "again); the jobs above keep running: follow them with visionq wait ID..."
)


@dataclass(frozen=True)
class PlannedJob:
    """One job of a submit: its files and the Idempotency-Key derived from them."""

    files: list[Path]
    key: str


@dataclass(frozen=True)
class JobRequest:
    """What every job of one submit asks, apart from its images."""

    task: str
    prompt: str | None
    labels: list[str] | None
    model: str | None
    options: dict[str, Any]
    schema: dict[str, Any] | None
    # Where each job's end event is also sent (--webhook-url).
    webhook_url: str | None = None
    # 0..9, 9 first among the tenant's waiting jobs (--priority); None: the API's default.
    priority: int | None = None

    def plan(self, groups: list[list[Path]], salt: str | None = None) -> list[PlannedJob]:
        """Each group's job with its key (reads every file once, to hash it); ``salt``
        (--new) gives keys no earlier run had."""
        digests = [[file_sha256(path) for path in group] for group in groups]
        occurrences = numbered([",".join(group) for group in digests])
        return [
            PlannedJob(
                files=group,
                key=job_key(
                    task=self.task,
                    prompt=self.prompt,
                    labels=self.labels,
                    model=self.model,
                    options=self.options,
                    schema=self.schema,
                    image_sha256s=shas,
                    occurrence=occurrence,
                    salt=salt,
                    webhook_url=self.webhook_url,
                    priority=self.priority,
                ),
            )
            for group, shas, occurrence in zip(groups, digests, occurrences, strict=True)
        ]

    def send(self, client: VisionqClient, job: PlannedJob) -> Job:
        """Submit one planned job; an API refusal names the job's files, not "Image #1"."""
        try:
            return client.submit(
                job.files,
                task=self.task,
                prompt=self.prompt,
                labels=self.labels,
                model=self.model,
                options=self.options or None,
                schema=self.schema,
                idempotency_key=job.key,
                webhook_url=self.webhook_url,
                priority=self.priority,
            )
        except VisionqError as exc:
            raise VisionqError(
                exc.status, exc.code, name_files(exc.message, job.files),
                retry_after=exc.retry_after,
            ) from exc  # fmt: skip


def submit_all(
    client: VisionqClient,
    request: JobRequest,
    planned: list[PlannedJob],
    *,
    announce: bool,
    submitted: dict[str, PlannedJob],
) -> None:
    """Submit every planned job in order, adding each to ``submitted`` as soon as it exists.

    ``announce``: print each id on stdout as it comes (else on stderr, so an interrupted
    wait still shows them). The caller reports ``submitted`` when this is interrupted.
    """
    for plan in planned:
        job = request.send(client, plan)
        submitted[job.id] = plan
        if job.status in ("failed", "cancelled"):
            # Only a job an earlier run made can have ended already: the same key finds it.
            say(
                f"note: {group_name(plan.files)}: job {job.id} of an earlier run of this "
                f"command {job.status}; the same command finds it again while its key is kept "
                f"(VISIONQ_IDEMPOTENCY_TTL_S): run it anew with: visionq retry {job.id}"
            )
        for warning in job.warnings:
            stderr().print(
                f"[yellow]warning:[/] {escape(group_name(plan.files))}: {escape(warning.message)}",
                highlight=False,
                soft_wrap=True,
            )
        if announce:
            typer.echo(job.id)
        else:
            say(f"submitted {job.id} {group_name(plan.files)}")


def rerun_helps(exc: VisionqError) -> bool:
    """Whether the same command run again may get past ``exc``: the API was not reached,
    pushed back (429) or failed (5xx). A 4xx refusal is refused again, the same way."""
    return exc.transient or exc.status >= 500


def report_partial(
    submitted: dict[str, PlannedJob],
    total: int,
    cause: str,
    *,
    fresh: bool = False,
    hint: str | None = None,
    resumable: bool = True,
) -> None:
    """After an interruption or a failure: what was submitted and how to resume (``hint``
    when resuming cannot help). ``resumable`` False (a refusal a rerun repeats): the resume
    hint only once a job was submitted, since a rerun then at least finds it again."""
    say(f"{cause}: {len(submitted)} of {total} job(s) submitted")
    for job_id, plan in submitted.items():
        say(f"  {job_id} {group_name(plan.files)}")
    if len(submitted) < total and (hint or resumable or submitted):
        say(hint or (FRESH_HINT if fresh else RESUME_HINT))


def submit(
    images: Annotated[
        list[Path],
        typer.Argument(help=f"Image files ({ACCEPTED_FORMATS_TEXT}).", show_default=False),
    ],
    task: Annotated[TaskKind, typer.Option("--task", "-t", help="What to do with the images.")],
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
    webhook_url: WebhookUrlOption = None,
    priority: PriorityOption = None,
    new: Annotated[
        bool,
        typer.Option(
            "--new",
            help="Make new jobs even if this command ran before (within the key retention, "
            "48 h by default): fresh Idempotency-Keys, so the jobs run and are billed again.",
        ),
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Wait, show progress and results.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Write results (JSON, annotated images, masks) here; implies --wait."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="Stop waiting after this many seconds (finished results are kept)."),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit IMAGE... as jobs; run it again to resume, not repeat.

    One job per image, or one for all where the task takes several.
    Every file is checked first: if any cannot be sent, nothing is submitted.
    Each job's id is printed as soon as it exists (on stderr with --wait, --json).
    The same command run again (same files, same options) finds the jobs
    it made instead of making new ones: rerun an interrupted submit to resume it.
    To run them again anyway (billed again) add --new; to rerun failed jobs,
    use visionq retry. With --wait each result shows its tier line: the tier
    asked, the lane it ran in (auto's choice), the tier Gemini served (or the
    cached job that answered it, at no charge) and the deadline.
    """
    options = job_options(
        option, max_output_tokens=max_output_tokens, thinking=thinking, max_side=max_side,
        cache=cache, economy=economy, tier=tier, deadline=deadline,
    )  # fmt: skip
    try:
        check_images(images)
        schema_value = read_schema(schema) if schema else None
    except InputError as exc:
        die(f"{str(exc).rstrip('.')}; nothing was submitted")
    request = JobRequest(
        task.value, prompt, label_list(labels), model, options, schema_value, webhook_url,
        priority,
    )  # fmt: skip
    planned = request.plan(job_groups(images, task), salt=secrets.token_hex(16) if new else None)
    waiting = wait or out is not None
    submitted: dict[str, PlannedJob] = {}
    with client_for(url, api_key) as client:
        try:
            submit_all(
                client, request, planned, announce=not (waiting or as_json), submitted=submitted
            )
        except KeyboardInterrupt:
            report_partial(submitted, len(planned), "interrupted", fresh=new)
            raise typer.Exit(130) from None
        except VisionqError as exc:
            say(f"error: {exc}")
            hint = WEBHOOK_URL_HINT if webhook_url and refuses_webhook_url(exc) else None
            report_partial(
                submitted, len(planned), "stopped", fresh=new, hint=hint,
                resumable=rerun_helps(exc),
            )  # fmt: skip
            raise typer.Exit(1) from None
        names = {job_id: group_name(plan.files) for job_id, plan in submitted.items()}
        if not waiting:
            if as_json:
                print_json([{"id": job_id, "images": name} for job_id, name in names.items()])
            return
        try:
            jobs = wait_for(client, list(submitted), timeout, quiet=as_json)
        except KeyboardInterrupt:
            say(f"interrupted; the jobs keep running: visionq wait {' '.join(submitted)}")
            raise typer.Exit(130) from None
        if out is not None:
            stems = {job_id: group_stem(p.files, task.value) for job_id, p in submitted.items()}
            try:
                sources = {job_id: p.files[0] for job_id, p in submitted.items()}
                write_outputs(client, jobs, stems, out, sources)
            except OSError as exc:
                die(f"cannot write results to {out}: {exc.strerror or exc}")
    show_finished(jobs, names, out=out, as_json=as_json, fresh=new)


def show_finished(
    jobs: dict[str, Job],
    names: dict[str, str] | None,
    *,
    out: Path | None,
    as_json: bool,
    fresh: bool = False,
) -> None:
    """The jobs' results (JSON or human) and what ``out`` got (``fresh``: submit --new),
    then exit 1 if any failed or is still running."""
    if as_json:
        print_json([dump(job) for job in jobs.values()])
    else:
        Console().print(results_view(jobs.values(), names))
        if out is not None:
            say(written_line(jobs, out, fresh=fresh))
    exit_for(list(jobs.values()), explain=not as_json)
