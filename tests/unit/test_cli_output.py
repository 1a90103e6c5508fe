"""What the user commands show and write (issue 17): full ids, whole answers at 80 columns,
--option parsing, honest estimates with a total, and --out's files, timeout included."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from PIL import Image
from rich.console import Console

from tests.unit.cli_fakes import FakeClient, install_fake, make_job, png_file, run
from visionq.cli.estimate_cmd import estimate_line, total_line
from visionq.cli.inputs import group_stem
from visionq.cli.options import job_options, parse_option
from visionq.cli.outputs import compact_image
from visionq.cli.render import results_view

LONG_ANSWER = (
    "A red rectangle in the upper left corner beside a blue ellipse, on a white background "
    "with a thin grey border; no text, no people, no other objects anywhere in the frame."
)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    return install_fake(monkeypatch)


def _rendered(renderable: Any, width: int = 80) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_results_at_80_columns_show_the_full_id_and_the_whole_answer() -> None:
    job = make_job(result={"text": LONG_ANSWER})
    text = _rendered(results_view([job], {job.id: "shapes.png"}))
    assert job.id in text
    assert " ".join(text.replace(job.id, "").split()).endswith(LONG_ANSWER)
    assert all(len(line) <= 80 for line in text.splitlines())


def test_demo_results_at_80_columns_show_full_ids_and_whole_answers() -> None:
    from visionq.cli.demo import DemoJob, demo_results
    from visionq.cli.samples import Sample

    jobs = [make_job(result={"text": LONG_ANSWER}), make_job(result={"text": "short"})]
    sample = Sample("coffee.png", b"", photo=True)
    text = _rendered(
        demo_results({job.id: DemoJob(sample, "caption") for job in jobs}, {j.id: j for j in jobs})
    )
    assert all(job.id in text for job in jobs)
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    words = " ".join(text.replace(jobs[1].id, "").split())
    assert LONG_ANSWER in words and "coffee.png" in words


def test_wait_prints_full_ids(fake: FakeClient) -> None:
    job = make_job(status="queued")
    fake.jobs[job.id] = job
    fake.finish = lambda j: j.model_copy(
        update={"status": "succeeded", "result": {"text": LONG_ANSWER}}
    )
    done = run("wait", job.id)
    assert done.exit_code == 0, done.stderr
    assert job.id in done.stdout and LONG_ANSWER in " ".join(done.stdout.split())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_output_tokens=256", ("max_output_tokens", 256)),
        ("temperature=0.5", ("temperature", 0.5)),
        ("cache=false", ("cache", False)),
        ("media_resolution=LOW", ("media_resolution", "LOW")),
        ('image_media_resolution=["LOW", "HIGH"]', ("image_media_resolution", ["LOW", "HIGH"])),
        ("thinking_level=", ("thinking_level", "")),
    ],
)
def test_option_values_are_json_when_they_parse(text: str, expected: tuple[str, Any]) -> None:
    assert parse_option(text) == expected


@pytest.mark.parametrize("text", ["max_output_tokens", "=3", "colour=red"])
def test_bad_options_are_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_option(text)


def test_named_flags_join_the_options() -> None:
    assert job_options(
        ["temperature=0"],
        max_output_tokens=100,
        thinking="minimal",
        max_side=512,
        cache=False,
        economy=True,
    ) == {
        "temperature": 0,
        "max_output_tokens": 100,
        "thinking_level": "MINIMAL",
        "max_side": 512,
        "cache": False,
        "economy": True,
    }
    assert job_options(None) == {}
    with pytest.raises(typer.BadParameter, match="given twice"):
        job_options(["max_output_tokens=5"], max_output_tokens=6)


def _estimate(low: str | None, high: str | None, *, known: bool = True) -> dict[str, Any]:
    return {
        "model": "gemini-x",
        "images": [{"width": 64, "height": 48, "tokens": 258}],
        "input_tokens": 270,
        "output_tokens_max": 512,
        "cost_usd": {"min": low, "max": high} if low is not None else None,
        "known": known,
        "reason": None if low is not None else "no standard price for model gemini-x",
    }


def test_estimate_line_says_what_min_and_max_mean() -> None:
    line = estimate_line("a.png", _estimate("0.0001", "0.0003"))
    assert "input 270 tokens" in line and "output up to 512 tokens" in line
    assert "USD 0.0001 (no output) - 0.0003 (output up to the cap)" in line


def test_an_unpriced_model_says_no_price() -> None:
    line = estimate_line("a.png", _estimate(None, None))
    assert "no price (no standard price for model gemini-x)" in line and "None" not in line


def test_total_line_sums_min_and_max() -> None:
    items = [_estimate("0.0001", "0.0003"), _estimate("0.00025", "0.001"), _estimate(None, None)]
    assert (
        total_line(items)
        == "total: 3 job(s): USD 0.00035 - 0.0013 (1 without a price, not counted)"
    )


def test_estimate_over_many_files_prints_a_total(fake: FakeClient, tmp_path: Path) -> None:
    files = [png_file(tmp_path / f"{n}.png") for n in range(3)]
    fake.estimate_answer = lambda _: _estimate("0.0001", "0.0002")
    done = run("estimate", *map(str, files), "--task", "caption", "--max-output-tokens", "64")
    assert done.exit_code == 0, done.stderr
    assert "total: 3 job(s): USD 0.0003 - 0.0006" in done.stdout
    assert all(call["options"] == {"max_output_tokens": 64} for call in fake.estimates)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_photographs_are_written_as_jpeg_drawings_as_png() -> None:
    noise = random.Random(1)
    photo = Image.new("RGB", (200, 150))
    photo.putdata([tuple(noise.randrange(256) for _ in range(3)) for _ in range(200 * 150)])
    photo_png = _png(photo)
    data, extension = compact_image(photo_png, photo=True)
    assert extension == "jpg" and len(data) < len(photo_png)
    drawing_png = _png(Image.new("RGB", (200, 150), "white"))
    data, extension = compact_image(drawing_png, photo=False)
    assert extension == "png" and len(data) <= len(drawing_png)
    # The input decides (photo_input), not the annotated copy's colours.
    assert compact_image(photo_png, photo=False)[1] == "png"


def test_multi_image_jobs_get_readable_names() -> None:
    a, b, c = Path("x/a.png"), Path("b.jpg"), Path("c.webp")
    assert group_stem([a], "caption") == "a"
    assert group_stem([a, b], "compare") == "a.b.compare"
    assert group_stem([a, b, c], "ask") == "a+2-more.ask"


def test_out_writes_masks_and_a_compact_annotated_image(fake: FakeClient, tmp_path: Path) -> None:
    image = png_file(tmp_path / "shapes.png")
    objects = [
        {"label": "red", "box": [0, 0, 10, 10], "mask_sha256": "1" * 64},
        {"label": "blue", "box": [5, 5, 20, 20], "mask_sha256": "2" * 64},
    ]
    fake.finish = lambda j: j.model_copy(
        update={"status": "succeeded", "result": {"objects": objects}}
    )
    fake.annotated = _png(Image.new("RGB", (64, 48), "white"))
    out = tmp_path / "out"
    done = run("submit", str(image), "--task", "segment", "--out", str(out))
    assert done.exit_code == 0, done.stderr
    [job_id] = fake.jobs
    names = sorted(path.name for path in out.iterdir())
    stem = f"shapes-{job_id}"
    assert names == [
        f"{stem}.annotated.png", f"{stem}.json", f"{stem}.mask-0.png", f"{stem}.mask-1.png"
    ]  # fmt: skip
    assert fake.masks == [(job_id, 0), (job_id, 1)]


def test_timeout_writes_the_finished_results_and_names_the_rest(
    fake: FakeClient, tmp_path: Path
) -> None:
    images = [png_file(tmp_path / f"{colour}.png", colour=colour) for colour in ("red", "blue")]
    out = tmp_path / "out"
    fake.finish = lambda j: j.model_copy(update={"status": "succeeded", "result": {"text": "x"}})
    # The second job is still running when --timeout expires.
    original_submit = fake.submit

    def submit(images: Any, **fields: Any) -> Any:
        job = original_submit(images, **fields)
        if len(fake.jobs) == 2:
            fake.wait_timeout_for.add(job.id)
        return job

    fake.submit = submit  # type: ignore[method-assign]
    done = run("submit", *map(str, images), "--task", "caption", "--out", str(out),
               "--timeout", "1")  # fmt: skip
    assert done.exit_code == 1
    finished, running = list(fake.jobs)
    assert [path.name for path in out.iterdir()] == [f"red-{finished}.json"]
    assert json.loads((out / f"red-{finished}.json").read_text())["status"] == "succeeded"
    text = " ".join(done.stderr.split())
    assert (
        f"still running when --timeout expired; wait for them with: visionq wait {running}" in text
    )


def test_the_cli_shows_a_jobs_tier_lane_served_tier_and_deadline() -> None:
    from visionq.cli.render import jobs_table, tier_cell, tier_text

    plain = make_job()
    assert tier_cell(plain) == "standard"
    deadline = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    auto = make_job().model_copy(
        update={"tier": "auto", "lane": "batch", "served_tier": "batch", "deadline_at": deadline}
    )
    assert tier_cell(auto) == "auto→batch"
    fell_back = make_job().model_copy(
        update={"tier": "flex", "lane": "flex", "served_tier": "standard"}
    )
    assert tier_cell(fell_back) == "flex (standard)"
    assert tier_text(auto).startswith("tier auto, lane batch, served batch, deadline ")
    assert tier_text(make_job(status="queued")) == (
        "tier standard, lane standard, served not yet, deadline none"
    )
    text = _rendered(results_view([auto]))
    assert "tier auto, lane batch, served batch, deadline" in text
    assert "auto→batch" in _rendered(jobs_table([auto, fell_back]), width=120)
    assert "flex (standard)" in _rendered(jobs_table([auto, fell_back]), width=120)


def test_estimate_says_which_tier_auto_chose_and_why(fake: FakeClient, tmp_path: Path) -> None:
    reason = "tier auto → flex: flex (prior) 900 s x 1.5 + flex reserve 300 s <= deadline 7200 s"
    fake.estimate_answer = lambda _: {
        **_estimate("0.0001", "0.0002"), "tier": "flex", "assumptions": ["a", reason],
    }  # fmt: skip
    done = run("estimate", str(png_file(tmp_path / "a.png")), "--task", "caption",
               "--tier", "auto", "--deadline", "2h")  # fmt: skip
    assert done.exit_code == 0, done.stderr
    assert "(output up to the cap) at tier flex" in done.stdout
    assert reason in " ".join(done.stdout.split())
    asked = {**_estimate("0.0001", "0.0002"), "tier": "flex", "assumptions": []}
    assert estimate_line("a.png", asked).endswith("at tier flex")
