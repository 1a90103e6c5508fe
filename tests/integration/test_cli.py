"""The CLI's user commands against a running stack, as a user runs them (subprocesses)."""

from __future__ import annotations

import io
import json
import secrets
import subprocess
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.integration.conftest import Stack
from tests.services import visionq_command
from visionq.emulator.shapes import Shape, draw_scene, encode

pytestmark = pytest.mark.integration

SHAPES = [
    Shape("rectangle", "red", (40, 50, 200, 150)),
    Shape("ellipse", "blue", (260, 60, 380, 220)),
]


def visionq(stack: Stack, *args: str, key: str | None = "acme") -> subprocess.CompletedProcess[str]:
    env = dict(stack.env, VISIONQ_URL=stack.api_url)
    if key is not None:
        env["VISIONQ_API_KEY"] = stack.keys[key]
    return subprocess.run(
        visionq_command(*args), env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def shapes_png(tmp_path: Path) -> Path:
    path = tmp_path / "shapes.png"
    path.write_bytes(encode(draw_scene(420, 300, SHAPES), "PNG"))
    return path


def fresh_png(path: Path, colour: str = "red") -> Path:
    """A small PNG no other test sends: the CLI derives a job's Idempotency-Key from its
    files, so the same file and options would find another test's job (the stacks share
    one database). A random shape offset alone repeated once in 40 draws: a corner pixel
    carries 24 random bits too (not a palette colour: the shape is what the emulator sees)."""
    offset = secrets.randbelow(40)
    shape = Shape("rectangle", colour, (10 + offset, 10, 80 + offset, 60))
    image = draw_scene(160, 90, [shape])
    image.putpixel((0, 0), tuple(secrets.token_bytes(3)))
    path.write_bytes(encode(image, "PNG"))
    return path


def test_submit_prints_ids_then_status_wait_result(stack: Stack, shapes_png: Path) -> None:
    submitted = visionq(stack, "submit", str(shapes_png), str(shapes_png), "--task", "caption")
    assert submitted.returncode == 0, submitted.stderr
    ids = submitted.stdout.split()
    assert len(ids) == 2  # caption takes one image: one job per image
    waited = visionq(stack, "wait", *ids, "--json")
    assert waited.returncode == 0, waited.stderr
    assert [job["status"] for job in json.loads(waited.stdout)] == ["succeeded", "succeeded"]
    status = visionq(stack, "status", ids[0], "--json")
    assert json.loads(status.stdout)[0]["id"] == ids[0]
    human = visionq(stack, "status", ids[0])
    assert "succeeded" in human.stdout and ids[0] in human.stdout
    result = visionq(stack, "result", ids[0])
    assert result.returncode == 0 and "420x300" in result.stdout and "synthetic" in result.stdout
    assert json.loads(visionq(stack, "result", ids[0], "--json").stdout)["result"]["text"]


def test_submit_wait_out_writes_json_and_annotated_png(
    stack: Stack, shapes_png: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = visionq(
        stack, "submit", str(shapes_png), "--task", "detect", "--wait", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout and "2 object(s)" in done.stdout
    [result_file] = out.glob("shapes-*.json")
    job = json.loads(result_file.read_text())
    assert sorted(obj["label"] for obj in job["result"]["objects"]) == [
        "blue ellipse",
        "red rectangle",
    ]
    [png] = out.glob("shapes-*.annotated.png")
    annotated = Image.open(io.BytesIO(png.read_bytes())).convert("RGB")
    assert annotated.size == (420, 300)
    # Box outlines are drawn exactly on the detected edges, over the white background.
    red = next(obj for obj in job["result"]["objects"] if obj["label"] == "red rectangle")
    x1, y1, x2, y2 = red["box"]
    assert annotated.getpixel((x1, (y1 + y2) // 2)) not in ((255, 255, 255), (230, 30, 30))
    assert annotated.getpixel((x1 - 3, (y1 + y2) // 2)) == (255, 255, 255)
    # detect result, human form: a table of objects with pixel boxes.
    shown = visionq(stack, "result", job["id"])
    assert f"[{x1}, {y1}, {x2}, {y2}]" in shown.stdout


def test_ask_with_several_images_is_one_job(stack: Stack, shapes_png: Path) -> None:
    done = visionq(
        stack,
        "submit",
        str(shapes_png),
        str(shapes_png),
        "--task",
        "ask",
        "--prompt",
        "How many shapes?",
        "--wait",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    [job] = json.loads(done.stdout)
    assert len(job["inputs"]) == 2 and job["status"] == "succeeded"


def test_classify_with_labels(stack: Stack, shapes_png: Path) -> None:
    done = visionq(
        stack,
        "submit",
        str(shapes_png),
        "--task",
        "classify",
        "--labels",
        "one shape,two shapes,three shapes",
        "--wait",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["result"]["label"] == "two shapes"


def test_jobs_lists_and_filters(stack: Stack, shapes_png: Path) -> None:
    visionq(stack, "submit", str(shapes_png), "--task", "caption", "--wait", key="globex")
    listed = json.loads(
        visionq(
            stack, "jobs", "--status", "succeeded", "--limit", "3", "--json", key="globex"
        ).stdout
    )
    assert 1 <= len(listed) <= 3 and all(job["status"] == "succeeded" for job in listed)
    assert "succeeded" in visionq(stack, "jobs", key="globex").stdout


def test_unknown_model_is_refused_naming_close_matches(stack: Stack, shapes_png: Path) -> None:
    done = visionq(
        stack, "submit", str(shapes_png), "--task", "caption", "--model", "gemini-3.6-flsh"
    )
    assert done.returncode != 0
    assert "Unknown model 'gemini-3.6-flsh'" in done.stderr and "gemini-3.6-flash" in done.stderr


def test_wait_exits_non_zero_when_a_job_failed(stack: Stack, tmp_path: Path) -> None:
    # A model the catalogue lists but this "Google" does not serve (its 404 for a model
    # retired since the catalogue's date); the job fails with Gemini's reason.
    faults = f"{stack.env['VISIONQ_GEMINI_BASE_URL']}/_emulator/faults"
    httpx.post(faults, json={"always_fail": 404}).raise_for_status()
    try:
        image = fresh_png(tmp_path / "shapes.png")
        done = visionq(stack, "submit", str(image), "--task", "caption", "--no-cache", "--wait")
    finally:
        httpx.post(faults, json={"always_fail": None}).raise_for_status()
    assert done.returncode == 1
    assert "failed" in done.stdout
    assert "failed: gemini_not_found: Gemini answered 404" in done.stderr


def test_models_lists_the_catalogue(stack: Stack) -> None:
    shown = visionq(stack, "models", "--json")
    rows = {row["id"]: row for row in json.loads(shown.stdout)}
    assert rows["gemini-3.5-flash-lite"]["default_for"] == ["every task but segment"]
    assert rows["gemini-3.6-flash"]["default_for"] == ["segment"]
    assert "gemini-2.5-flash" not in rows
    retired = {
        row["id"]: row for row in json.loads(visionq(stack, "models", "--all", "--json").stdout)
    }
    assert retired["gemini-2.5-flash"]["routed_to"] == "gemini-3.5-flash-lite"
    with stack.client() as client:
        listed = client.get("/v1/models").json()
    assert {row["id"] for row in listed["models"]} == set(retired)
    assert listed["aliases"]["gemini-flash-latest"] == "gemini-3.8-flash"


def test_cancel(paused_stack: Stack, tmp_path: Path) -> None:
    if paused_stack.worker is not None:
        paused_stack.worker.stop()
        paused_stack.worker = None
    image = fresh_png(tmp_path / "shapes.png")
    submitted = visionq(paused_stack, "submit", str(image), "--task", "caption", "--no-cache")
    job_id = submitted.stdout.strip()
    cancelled = visionq(paused_stack, "cancel", job_id)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"{job_id} cancelled"
    result = visionq(paused_stack, "result", job_id)
    assert result.returncode == 1 and "cancelled" in result.stderr


@pytest.mark.parametrize(
    ("args", "key", "message"),
    [
        (["status", "nope"], "acme", "No job nope"),
        (["jobs"], None, "no API key"),
        (["submit", "/does/not/exist.png", "--task", "caption"], "acme", "no such file"),
        (["submit", "pyproject.toml", "--task", "caption"], "acme", "pyproject.toml: The file"),
        (["jobs", "--url", "http://127.0.0.1:9"], "acme", "cannot reach the visionq API"),
        (["submit", "pyproject.toml", "--task", "paint"], "acme", "paint"),
    ],
)
def test_errors_are_one_line_without_traceback(
    stack: Stack, args: list[str], key: str | None, message: str
) -> None:
    done = visionq(stack, *args, key=key)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_bad_key_is_reported(stack: Stack) -> None:
    env = dict(stack.env, VISIONQ_URL=stack.api_url, VISIONQ_API_KEY="vq_wrong")
    done = subprocess.run(visionq_command("jobs"), env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "invalid_api_key" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_segment_and_custom_from_the_cli(stack: Stack, shapes_png: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg"
    done = visionq(
        stack, "submit", str(shapes_png), "--task", "segment", "--wait", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "2 object(s)" in done.stdout
    assert len(list(out.glob("shapes-*.annotated.png"))) == 1
    job_id = json.loads(next(out.glob("shapes-*.json")).read_text())["id"]
    shown = visionq(stack, "result", job_id)
    assert "red rectangle" in shown.stdout and "[40, 50, 200, 150]" in shown.stdout
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps(
            {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
        )
    )
    custom = visionq(
        stack,
        "submit",
        str(shapes_png),
        "--task",
        "custom",
        "--prompt",
        "Count.",
        "--schema",
        str(schema),
        "--wait",
        "--json",
    )
    assert custom.returncode == 0, custom.stderr
    [job] = json.loads(custom.stdout)
    assert isinstance(job["result"]["json"]["count"], int)


def test_the_same_submit_twice_makes_no_new_job(stack: Stack, tmp_path: Path) -> None:
    # Issue 17: a rerun (after a Ctrl-C or a failure) must find its jobs, not pay again,
    # even with --no-cache: the Idempotency-Keys come from the files and options.
    files = [str(fresh_png(tmp_path / f"{c}.png", c)) for c in ("red", "green", "blue")]
    args = ["submit", *files, "--task", "caption", "--no-cache"]
    first = visionq(stack, *args)
    assert first.returncode == 0, first.stderr
    ids = first.stdout.split()
    assert len(set(ids)) == 3
    second = visionq(stack, *args)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ids
    # Any change (here an option) is a new job.
    third = visionq(
        stack, "submit", files[0], "-t", "caption", "--no-cache", "--max-output-tokens", "300"
    )
    assert third.returncode == 0, third.stderr
    assert third.stdout.split()[0] not in ids


def test_a_bad_file_among_many_queues_nothing_and_is_named(
    stack: Stack, shapes_png: Path, tmp_path: Path
) -> None:
    coffee = tmp_path / "coffee.gif"
    coffee.write_text("not an image at all\n")
    before = visionq(stack, "jobs", "--json", "--limit", "200", key="globex")
    done = visionq(
        stack, "submit", str(shapes_png), str(coffee), str(shapes_png), "--task", "caption",
        "--no-cache", key="globex",
    )  # fmt: skip
    assert done.returncode == 1
    assert f"{coffee}: The file is not a" in done.stderr and "nothing was submitted" in done.stderr
    after = visionq(stack, "jobs", "--json", "--limit", "200", key="globex")
    assert json.loads(after.stdout) == json.loads(before.stdout)


def test_a_file_the_api_refuses_is_named_and_the_run_can_resume(
    stack: Stack, tmp_path: Path
) -> None:
    shapes_png = fresh_png(tmp_path / "shapes.png")
    # A PNG signature over garbage passes the local check; the API refuses it (422).
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    done = visionq(stack, "submit", str(shapes_png), str(broken), "--task", "caption", "--no-cache")
    assert done.returncode == 1
    stderr = " ".join(done.stderr.split())
    assert f"{broken}: The image cannot be decoded" in stderr and "Image #1" not in stderr
    [made] = done.stdout.split()
    assert "stopped: 1 of 2 job(s) submitted" in stderr and made in stderr
    resumed = visionq(stack, "submit", str(shapes_png), "--task", "caption", "--no-cache")
    assert resumed.stdout.split() == [made]


def test_wait_results_show_full_ids_and_whole_answers(stack: Stack, shapes_png: Path) -> None:
    done = visionq(stack, "submit", str(shapes_png), "--task", "caption", "--wait")
    assert done.returncode == 0, done.stderr
    [job_id] = [line.split()[1] for line in done.stderr.splitlines() if "submitted" in line]
    assert len(job_id) == 36 and job_id in done.stdout
    answer = json.loads(visionq(stack, "result", job_id, "--json").stdout)["result"]["text"]
    assert " ".join(answer.split()) in " ".join(done.stdout.split())


def test_cancel_of_a_finished_job_says_so(stack: Stack, shapes_png: Path) -> None:
    done = visionq(stack, "submit", str(shapes_png), "--task", "caption", "--json", "--wait")
    [job] = json.loads(done.stdout)
    cancelled = visionq(stack, "cancel", job["id"])
    assert cancelled.returncode == 0
    assert cancelled.stdout.strip() == f"job {job['id']} already succeeded; nothing to cancel"


def test_out_writes_segment_masks_and_a_jpeg_for_a_photo(stack: Stack, tmp_path: Path) -> None:
    photo = tmp_path / "shelf.jpg"
    photo.write_bytes(encode(draw_scene(420, 300, SHAPES), "JPEG", quality=92))
    out = tmp_path / "out"
    done = visionq(stack, "submit", str(photo), "--task", "segment", "--out", str(out))
    assert done.returncode == 0, done.stderr
    [result_file] = out.glob("shelf-*.json")
    job = json.loads(result_file.read_text())
    stem = f"shelf-{job['id']}"
    masks = sorted(out.glob(f"{stem}.mask-*.png"))
    assert len(masks) == len(job["result"]["objects"]) == 2
    for mask, obj in zip(masks, job["result"]["objects"], strict=True):
        x1, y1, x2, y2 = obj["box"]
        with Image.open(mask) as image:
            assert image.size == (x2 - x1, y2 - y1)
    [annotated] = out.glob(f"{stem}.annotated.*")
    with Image.open(annotated) as image:
        assert annotated.suffix == ".jpg" and image.size == (420, 300)
