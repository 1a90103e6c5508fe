"""User commands: submit, status, wait, result, jobs, cancel. HTTP only, via client/."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from cli.render import JobProgress, detections_table, jobs_table, results_table, summary
from client import DEFAULT_URL, Job, VisionqClient, VisionqError
from vision.tasks import MULTI_IMAGE_TASKS, TaskKind

UrlOption = Annotated[
    str, typer.Option("--url", envvar="VISIONQ_URL", help="visionq API URL.", show_default=True)
]
KeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="VISIONQ_API_KEY", help="API key (visionq keys create).",
                 show_default=False),
]  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def _stderr() -> Console:
    return Console(stderr=True)


@contextlib.contextmanager
def _client(url: str, api_key: str | None) -> Iterator[VisionqClient]:
    """A client whose failures end the command with one clear line, not a traceback."""
    if not api_key:
        _die("no API key: pass --api-key or set VISIONQ_API_KEY (visionq keys create NAME)")
    try:
        with VisionqClient(url, api_key) as client:
            yield client
    except VisionqError as exc:
        _die(str(exc))
    except TimeoutError as exc:
        _die(f"timed out: {exc}")


def _die(message: str, code: int = 1) -> NoReturn:
    _stderr().print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _dump(job: Job) -> dict[str, Any]:
    return job.model_dump(mode="json")


def _wait_with_progress(
    client: VisionqClient, job_ids: Sequence[str], timeout: float | None, quiet: bool
) -> dict[str, Job]:
    if quiet:
        return client.wait(job_ids, timeout=timeout)
    with JobProgress(_stderr(), len(job_ids)) as progress:
        return client.wait(job_ids, timeout=timeout, on_update=progress.update)


def _exit_for(jobs: Sequence[Job], *, explain: bool) -> None:
    """Exit 1 if any job did not succeed, after saying why in full (tables truncate)."""
    unsuccessful = [job for job in jobs if job.status != "succeeded"]
    if not unsuccessful:
        return
    if explain:
        console = _stderr()
        for job in unsuccessful:
            reason = f"{job.error.code}: {job.error.message}" if job.error else "no reason given"
            console.print(
                f"job {job.id} {job.status}: {reason}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    raise typer.Exit(1)


def _write_outputs(
    client: VisionqClient, jobs: dict[str, Job], names: dict[str, str], out: Path
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for job in jobs.values():
        stem = f"{Path(names.get(job.id, 'job')).stem}-{job.id[:8]}"
        (out / f"{stem}.json").write_text(json.dumps(_dump(job), indent=2) + "\n")
        if job.task in ("detect", "segment") and job.status == "succeeded":
            (out / f"{stem}.annotated.png").write_bytes(client.annotated_png(job.id))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        _die(f"{path}: not a JSON file ({exc})")


def submit(
    images: Annotated[
        list[Path], typer.Argument(help="Image files (PNG, JPEG, WEBP, HEIC).", show_default=False)
    ],
    task: Annotated[TaskKind, typer.Option("--task", "-t", help="What to do with the images.")],
    prompt: Annotated[
        str | None, typer.Option(help="ask: the question; detect: what to find.")
    ] = None,
    labels: Annotated[str | None, typer.Option(help="classify: comma-separated labels.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Gemini model (server default if unset).")
    ] = None,
    schema: Annotated[
        Path | None, typer.Option(help="custom: a JSON Schema file the answer must satisfy.")
    ] = None,
    max_side: Annotated[
        int | None, typer.Option(help="Downscale images to this longest side before sending.")
    ] = None,
    cache: Annotated[
        bool, typer.Option(help="Reuse an identical earlier job's result (free).")
    ] = True,
    economy: Annotated[
        bool, typer.Option(help="Downscale to the cheapest token tier the task tolerates.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Wait, show progress and results.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write results (JSON, annotated PNGs) here; implies --wait.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Give up waiting after this many seconds.")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit IMAGE... as jobs: one per image, or one for all where the task takes several."""
    _check_files([*images, *([schema] if schema else [])])
    schema_value = _read_json(schema) if schema else None
    options = _job_options(max_side=max_side, cache=cache, economy=economy)
    groups = _job_groups(images, task)
    label_list = _label_list(labels)
    names: dict[str, str] = {}
    with _client(url, api_key) as client:
        for group in groups:
            job = client.submit(
                group,
                task=task.value,
                prompt=prompt,
                labels=label_list,
                model=model,
                options=options or None,
                schema=schema_value,
            )
            names[job.id] = ", ".join(path.name for path in group)
            for warning in job.warnings:
                _stderr().print(
                    f"[yellow]warning:[/] {names[job.id]}: {escape(warning.message)}",
                    highlight=False,
                    soft_wrap=True,
                )
            if not (wait or out) and not as_json:
                typer.echo(job.id)
        if not (wait or out):
            if as_json:
                _print_json([{"id": job_id, "images": name} for job_id, name in names.items()])
            return
        jobs = _wait_with_progress(client, list(names), timeout, quiet=as_json)
        if out is not None:
            try:
                _write_outputs(client, jobs, names, out)
            except OSError as exc:
                _die(f"cannot write results to {out}: {exc.strerror or exc}")
    _show_finished(jobs, names, out=out, as_json=as_json)


def _job_groups(images: list[Path], task: TaskKind) -> list[list[Path]]:
    """One job per image, or one job for all images where the task takes several."""
    return [images] if task in MULTI_IMAGE_TASKS else [[path] for path in images]


def _label_list(labels: str | None) -> list[str] | None:
    return [part.strip() for part in labels.split(",")] if labels else None


def _check_files(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            _die(f"{path}: is a directory; give image files")
        if not path.is_file():
            _die(f"{path}: no such file")


def _job_options(*, max_side: int | None, cache: bool, economy: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"max_side": max_side} if max_side else {}
    if not cache:
        options["cache"] = False
    if economy:
        options["economy"] = True
    return options


def _show_finished(
    jobs: dict[str, Job], names: dict[str, str], *, out: Path | None, as_json: bool
) -> None:
    if as_json:
        _print_json([_dump(job) for job in jobs.values()])
    else:
        Console().print(results_table(jobs.values(), names))
        if out is not None:
            _stderr().print(f"results written to {out}/")
    _exit_for(list(jobs.values()), explain=not as_json)


def wait(
    job_ids: Annotated[list[str], typer.Argument(help="Job ids.", show_default=False)],
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Wait for jobs to end; exit code 1 if any did not succeed."""
    with _client(url, api_key) as client:
        jobs = _wait_with_progress(client, job_ids, timeout, quiet=as_json)
    if as_json:
        _print_json([_dump(job) for job in jobs.values()])
    else:
        Console().print(results_table(jobs.values()))
    _exit_for(list(jobs.values()), explain=not as_json)


def status(
    job_ids: Annotated[list[str], typer.Argument(help="Job ids.", show_default=False)],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the status of jobs."""
    with _client(url, api_key) as client:
        jobs = [client.job(job_id) for job_id in job_ids]
    if as_json:
        _print_json([_dump(job) for job in jobs])
    else:
        Console().print(jobs_table(jobs))


def result(
    job_id: Annotated[str, typer.Argument(help="Job id.", show_default=False)],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a job's result (or its error)."""
    with _client(url, api_key) as client:
        job = client.job(job_id)
    if as_json:
        _print_json(_dump(job))
        return
    console = Console()
    if job.status != "succeeded":
        message = f"job {job.id} is {job.status}"
        if job.error is not None:
            message += f": {job.error.code}: {job.error.message}"
        _die(message)
    if job.task in ("detect", "segment"):
        console.print(detections_table(job))
    else:
        console.print(summary(job, width=10_000), markup=False, highlight=False, soft_wrap=True)


def jobs(
    status_filter: Annotated[
        str | None,
        typer.Option("--status", help="queued, running, succeeded, failed or cancelled."),
    ] = None,
    limit: Annotated[int, typer.Option(help="How many jobs to show.")] = 20,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List your jobs, newest first."""
    with _client(url, api_key) as client:
        found: list[Job] = []
        for job in client.iter_jobs(status=status_filter, page_size=min(limit, 200)):
            found.append(job)
            if len(found) >= limit:
                break
    if as_json:
        _print_json([_dump(job) for job in found])
    else:
        Console().print(jobs_table(found))


def cancel(
    job_id: Annotated[str, typer.Argument(help="Job id.", show_default=False)],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a queued or running job."""
    with _client(url, api_key) as client:
        job = client.cancel(job_id)
    if as_json:
        _print_json(_dump(job))
    else:
        typer.echo(f"{job.id} {job.status}")


def estimate(
    images: Annotated[list[Path], typer.Argument(help="Image files.", show_default=False)],
    task: Annotated[TaskKind, typer.Option("--task", "-t", help="The task to estimate.")],
    prompt: Annotated[str | None, typer.Option(help="The prompt, if the task takes one.")] = None,
    labels: Annotated[str | None, typer.Option(help="classify: comma-separated labels.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Gemini model (server default if unset).")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Estimate tokens and USD for IMAGE... (one job per image, like submit); nothing runs."""
    _check_files(images)
    groups = _job_groups(images, task)
    label_list = _label_list(labels)
    with _client(url, api_key) as client:
        found = [
            client.estimate(group, task=task.value, prompt=prompt, labels=label_list, model=model)
            for group in groups
        ]
    if as_json:
        _print_json(found)
        return
    console = Console()
    for group, item in zip(groups, found, strict=True):
        names = ", ".join(path.name for path in group)
        if not item.get("known"):
            console.print(f"{names}: no estimate: {item.get('reason')}", markup=False)
            continue
        sizes = " ".join(f"{i['width']}x{i['height']}={i['tokens']}" for i in item["images"])
        cost = item["cost_usd"] or {}
        console.print(
            f"{names}: {item['model']} input {item['input_tokens']} tokens (images {sizes}), "
            f"output <= {item['output_tokens_max']}, USD {cost.get('min')} - {cost.get('max')}",
            markup=False, highlight=False,
        )  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add the user commands to the `visionq` app."""
    for command in (submit, estimate, status, wait, result, jobs, cancel):
        app.command()(command)
