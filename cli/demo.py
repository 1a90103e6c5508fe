"""`visionq demo`: start the stack, run sample jobs of every kind, show and save results."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, RenderableType

from visionq.cli.dev import RedisUrlOption, running_stack
from visionq.cli.render import JobProgress, results_view
from visionq.cli.samples import PHOTO_LABELS, Sample
from visionq.client import Job, VisionqClient

SHAPE_LABELS = ["one shape", "two shapes", "three shapes", "four shapes"]


@dataclass(frozen=True)
class DemoJob:
    sample: Sample
    task: str
    prompt: str | None = None
    labels: list[str] | None = None


def plan(samples: list[Sample]) -> list[DemoJob]:
    """Caption, classify, ask and detect across the sample images."""
    jobs: list[DemoJob] = []
    for sample in samples:
        jobs.append(DemoJob(sample, "detect"))
        jobs.append(DemoJob(sample, "caption"))
        if sample.photo:
            jobs.append(DemoJob(sample, "classify", labels=PHOTO_LABELS))
            jobs.append(DemoJob(sample, "ask", prompt="What is the main subject of this photo?"))
        else:
            jobs.append(DemoJob(sample, "classify", labels=SHAPE_LABELS))
            jobs.append(
                DemoJob(sample, "ask", prompt="How many shapes are there, and what colours?")
            )
    return jobs


def demo_results(demo_jobs: dict[str, DemoJob], jobs: dict[str, Job]) -> RenderableType:
    """The demo's results as `submit --wait` shows them: per job a heading (full id, image,
    task, status) and its whole answer, wrapped to the terminal, never cut."""
    names = {job_id: item.sample.name for job_id, item in demo_jobs.items()}
    return results_view(jobs.values(), names)


def _save(
    client: VisionqClient, out: Path, demo_jobs: dict[str, DemoJob], jobs: dict[str, Job]
) -> None:
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    records = []
    for job_id, item in demo_jobs.items():
        (out / "inputs" / item.sample.name).write_bytes(item.sample.data)
        job = jobs[job_id]
        records.append({"image": item.sample.name, **job.model_dump(mode="json")})
        if job.task == "detect" and job.status == "succeeded":
            stem = Path(item.sample.name).stem
            (out / f"{stem}.detect.png").write_bytes(client.annotated_png(job_id))
    (out / "results.json").write_text(json.dumps(records, indent=2) + "\n")


def demo(
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the results (default: a new visionq-demo-* folder)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="API port (default 8000, or a free one if taken).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the stack's database, images and Redis (default: a temporary "
            "one, removed afterwards); your VISIONQ_DATABASE_URL is never used."
        ),
    ] = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Start a throwaway stack, run sample jobs, save the results.

    Caption, classify, ask and detect on generated shapes and photographs,
    then stop. The stack keeps its data in a temporary folder (or --data-dir)
    and its API key is revoked at the end: the demo leaves nothing behind but
    the results folder.
    """
    console = Console()
    out = out or Path(f"visionq-demo-{time.strftime('%Y%m%d-%H%M%S')}")
    if data_dir is not None:
        _run(console, out, port, data_dir, redis_url)
        return
    with tempfile.TemporaryDirectory(
        prefix="visionq-demo-data-", ignore_cleanup_errors=True
    ) as temporary:
        _run(console, out, port, Path(temporary), redis_url)


def _run(
    console: Console, out: Path, port: int | None, data_dir: Path, redis_url: str | None
) -> None:
    from visionq.cli.samples import photo_samples, shape_samples

    samples = shape_samples()
    photos = photo_samples()
    if not photos:
        console.print("[yellow]scikit-image is not installed: no photographs, shapes only "
                      "(pip install 'visionq[demo]').[/]")  # fmt: skip
    samples += photos
    todo = plan(samples)
    failed = False
    with (
        running_stack(console, port, data_dir, redis_url) as stack,
        VisionqClient(stack.api_url, stack.api_key) as client,
    ):
        console.print(f"\nsubmitting {len(todo)} jobs on {len(samples)} images...", highlight=False)
        demo_jobs: dict[str, DemoJob] = {}
        for item in todo:
            # No result cache: a demo shows the pipeline working, even when run twice.
            job = client.submit(
                [item.sample.data],
                task=item.task,
                prompt=item.prompt,
                labels=item.labels,
                options={"cache": False},
            )
            demo_jobs[job.id] = item
        with JobProgress(console, len(demo_jobs)) as progress:
            jobs = client.wait(list(demo_jobs), timeout=600, on_update=progress.update)
        console.print(demo_results(demo_jobs, jobs))
        _save(client, out, demo_jobs, jobs)
        failed = any(job.status != "succeeded" for job in jobs.values())
        if stack.uses_emulator:
            console.print(
                "[yellow]These answers come from the emulator (synthetic), not Gemini.[/]"
            )
        console.print(
            f"results: {out.resolve()}  (results.json, *.detect.png, inputs/)", highlight=False
        )
    if failed:
        raise typer.Exit(1)
