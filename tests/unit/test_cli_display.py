"""What a new user's trial found wrong in the CLI's output: a cached job said "served not
yet", the jobs table dropped pri and tier at 80 columns without a word, --out wrote a
drawing as JPEG, and a --timeout said results were written when none were."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from rich.console import Console

from tests.unit.cli_fakes import FakeClient, install_fake, make_job, png_file, run
from visionq.cli.outputs import photo_input
from visionq.cli.render import jobs_table, tier_text
from visionq.client import Job
from visionq.client.models import JobInput

SOURCE = "bc0acbd2-0d5c-4c55-9a53-2f1e6a0f3c11"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    return install_fake(monkeypatch)


def _rendered(renderable: Any, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def _cached(job: Job) -> Job:
    return job.model_copy(update={"status": "succeeded", "cached_from": SOURCE,
                                  "served_tier": None, "result": {"text": "a cat"}})  # fmt: skip


def test_a_cached_job_says_it_was_answered_from_the_cache(fake: FakeClient) -> None:
    job = make_job(status="queued")
    fake.jobs[job.id] = job
    fake.finish = _cached
    done = run("wait", job.id)
    assert done.exit_code == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert f"tier standard, lane standard, cached from {SOURCE} (no charge)" in text
    assert "served not yet" not in text


def test_the_served_part_of_the_tier_line() -> None:
    assert "served not yet" in tier_text(make_job(status="running"))
    served = make_job().model_copy(update={"served_tier": "flex"})
    assert "served flex" in tier_text(served)
    # Failed without an answer: nothing was served, and nothing is still to come.
    assert ", no answer served," in tier_text(make_job(status="failed"))
    # A job made from the cache's answer but not yet marked done says what is true now.
    assert "served not yet" in tier_text(make_job(status="queued").model_copy(
        update={"cached_from": SOURCE}))  # fmt: skip


def _jobs() -> list[Job]:
    long = "A red rectangle in the upper left corner beside a blue ellipse, on white"
    return [
        make_job(result={"text": long}).model_copy(update={"priority": 9}),
        make_job(status="queued").model_copy(update={"tier": "auto", "lane": "flex"}),
    ]


def _header(text: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if line.split()[:1] == ["id"])


def test_at_80_columns_the_jobs_table_keeps_pri_and_tier_and_names_what_it_left_out() -> None:
    jobs = _jobs()
    text = _rendered(jobs_table(jobs), 80)
    header = _header(text)
    assert {"pri", "tier"} <= set(header) and "result" not in header
    assert all(len(line) <= 80 for line in text.splitlines())
    assert (
        "left out at this width: result / error, created; a wider terminal shows them"
        " (or visionq result ID)" in " ".join(text.split())  # the caption wraps at 80
    )
    cells = {line.split()[0]: line.split()[-2:] for line in text.splitlines()
             if line.split()[:1] in ([job.id] for job in jobs)}  # fmt: skip
    assert cells == {jobs[0].id: ["9", "standard"], jobs[1].id: ["5", "auto→flex"]}


def test_a_narrow_terminal_never_cuts_a_job_id() -> None:
    jobs = _jobs()
    text = _rendered(jobs_table(jobs), 60)
    assert all(job.id in text for job in jobs), text


def test_at_150_columns_the_jobs_table_shows_every_column_and_cuts_the_answer() -> None:
    text = _rendered(jobs_table(_jobs()), 150)
    assert " ".join(_header(text)) == "id task status created tries pri tier result / error"
    assert "left out" not in text
    assert "A red rectangle in the upper left corner" in text
    assert all(len(line.rstrip()) <= 150 for line in text.splitlines())


def test_visionq_jobs_at_80_columns_shows_pri_and_tier(fake: FakeClient) -> None:
    for job in _jobs():
        fake.jobs[job.id] = job
    done = run("jobs")
    assert done.exit_code == 0, done.stderr
    assert {"pri", "tier"} <= set(_header(done.stdout)) and "left out" in done.stdout


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _noise(size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = random.Random(7)
    image = Image.new("RGB", size)
    image.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(size[0] * size[1])])
    return image


def _detect_out(fake: FakeClient, image: Path, tmp_path: Path) -> list[str]:
    fake.finish = lambda j: j.model_copy(update={"status": "succeeded", "result": {
        "objects": [{"label": "square", "box": [0, 0, 10, 10]}]}})  # fmt: skip
    # The annotated copy has many colours (anti-aliased labels), whatever the input.
    fake.annotated = _png(_noise())
    out = tmp_path / "out"
    done = run("submit", str(image), "--task", "detect", "--out", str(out))
    assert done.exit_code == 0, done.stderr
    return sorted(path.suffix for path in out.glob("*.annotated.*"))


def test_out_writes_a_drawings_annotated_image_as_png(fake: FakeClient, tmp_path: Path) -> None:
    drawing = Image.new("RGB", (64, 48), "white")
    drawing.paste((255, 0, 0), (0, 0, 20, 20))
    drawing.paste((0, 0, 255), (30, 10, 50, 30))
    drawing.paste((0, 128, 0), (10, 30, 60, 40))
    (tmp_path / "shapes.png").write_bytes(_png(drawing))
    assert _detect_out(fake, tmp_path / "shapes.png", tmp_path) == [".png"]


def test_out_writes_a_photo_saved_as_png_as_jpeg(fake: FakeClient, tmp_path: Path) -> None:
    (tmp_path / "photo.png").write_bytes(_png(_noise()))
    assert _detect_out(fake, tmp_path / "photo.png", tmp_path) == [".jpg"]


def test_a_camera_format_input_is_a_photo(tmp_path: Path) -> None:
    def made_from(mime_type: str) -> Job:
        found = JobInput(position=0, sha256="0" * 64, mime_type=mime_type, width=64,
                         height=48, byte_size=100)  # fmt: skip
        return make_job().model_copy(update={"inputs": [found]})

    assert photo_input(made_from("image/jpeg"), None)
    assert not photo_input(made_from("image/png"), None)
    assert not photo_input(made_from("image/png"), png_file(tmp_path / "flat.png"))
    assert not photo_input(made_from("image/png"), tmp_path / "gone.png")


def _timeout_run(
    fake: FakeClient, tmp_path: Path, running: int, extra: tuple[str, ...] = ()
) -> Any:
    images = [png_file(tmp_path / f"{c}.png", colour=c) for c in ("red", "blue", "green")]
    original_submit = fake.submit

    def submit(files: Any, **fields: Any) -> Job:
        job = original_submit(files, **fields)
        if len(fake.jobs) > 3 - running:
            fake.wait_timeout_for.add(job.id)
        return job

    fake.submit = submit  # type: ignore[method-assign]
    return run("submit", *map(str, images), "--task", "caption", "--out",
               str(tmp_path / "out"), "--timeout", "1", *extra)  # fmt: skip


def test_a_timeout_says_how_many_jobs_results_were_written(
    fake: FakeClient, tmp_path: Path
) -> None:
    done = _timeout_run(fake, tmp_path, running=2)
    assert done.exit_code == 1
    text = " ".join(done.stderr.split())
    assert (f"1 of 3 jobs' results written to {tmp_path / 'out'}/; the other 2 have not "
            "finished: run the same command again to write theirs") in text  # fmt: skip
    assert len(list((tmp_path / "out").iterdir())) == 1


def test_a_timeout_with_nothing_finished_says_nothing_was_written(
    fake: FakeClient, tmp_path: Path
) -> None:
    done = _timeout_run(fake, tmp_path, running=3, extra=("--new",))
    assert done.exit_code == 1
    text = " ".join(done.stderr.split())
    assert f"no results written to {tmp_path / 'out'}/: none of the 3 job(s) has finished" in text
    # A --new run run again would submit new jobs: it is not the way to their files.
    assert "visionq wait ID... shows their results when they end, but writes no files" in text
    assert "results written" not in text.replace("no results written", "")
    assert list((tmp_path / "out").iterdir()) == []


def test_out_without_a_timeout_says_how_many_jobs_it_wrote(
    fake: FakeClient, tmp_path: Path
) -> None:
    done = _timeout_run(fake, tmp_path, running=0)
    assert done.exit_code == 0, done.stderr
    assert f"results of 3 job(s) written to {tmp_path / 'out'}/" in " ".join(done.stderr.split())
