"""`visionq submit` (issue 17): keys derived from what is sent, every file checked first,
ids shown as they come, and an interrupted or failed submit says how to resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.cli_fakes import FakeClient, install_fake, make_job, png_file, run
from visionq.cli.idempotency import job_key
from visionq.client import VisionqError

BASE: dict[str, Any] = {
    "task": "caption",
    "prompt": None,
    "labels": None,
    "model": None,
    "options": {},
    "schema": None,
    "image_sha256s": ["a" * 64],
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    return install_fake(monkeypatch)


@pytest.fixture
def pngs(tmp_path: Path) -> list[Path]:
    colours = ["red", "green", "blue"]
    return [png_file(tmp_path / f"{colour}.png", colour=colour) for colour in colours]


def test_job_key_is_stable_for_the_same_request() -> None:
    assert job_key(**BASE) == job_key(**dict(BASE, options={}))
    # Key order of options and schema does not matter; their content does.
    one = job_key(**dict(BASE, options={"a": 1, "b": 2}, schema={"x": 1, "y": 2}))
    two = job_key(**dict(BASE, options={"b": 2, "a": 1}, schema={"y": 2, "x": 1}))
    assert one == two


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("task", "detect"),
        ("prompt", "what is it?"),
        ("labels", ["cat", "dog"]),
        ("model", "gemini-3.6-flash"),
        ("options", {"cache": False}),
        ("options", {"max_output_tokens": 256}),
        ("schema", {"type": "object"}),
        ("image_sha256s", ["b" * 64]),
        ("image_sha256s", ["a" * 64, "b" * 64]),
        ("occurrence", 1),
    ],
)
def test_job_key_changes_with_each_input(field: str, value: Any) -> None:
    changed = job_key(**dict(BASE, **{field: value}))
    assert changed != job_key(**BASE)
    assert changed.startswith("vq1-") and len(changed) <= 255


def test_image_order_changes_the_key() -> None:
    ab = job_key(**dict(BASE, image_sha256s=["a" * 64, "b" * 64]))
    ba = job_key(**dict(BASE, image_sha256s=["b" * 64, "a" * 64]))
    assert ab != ba


def test_same_command_twice_sends_the_same_keys(fake: FakeClient, pngs: list[Path]) -> None:
    args = ["submit", *map(str, pngs), "--task", "caption", "--no-cache"]
    first, second = run(*args), run(*args)
    assert first.exit_code == 0 and second.exit_code == 0, first.stderr + second.stderr
    keys = [call["idempotency_key"] for call in fake.submitted]
    assert keys[:3] == keys[3:] and len(set(keys[:3])) == 3
    assert first.stdout == second.stdout and len(first.stdout.split()) == 3


def test_new_makes_new_jobs_each_run(fake: FakeClient, pngs: list[Path]) -> None:
    args = ["submit", *map(str, pngs), "--task", "caption", "--no-cache"]
    plain, first, second = run(*args), run(*args, "--new"), run(*args, "--new")
    assert all(done.exit_code == 0 for done in (plain, first, second))
    keys = [call["idempotency_key"] for call in fake.submitted]
    assert len(set(keys)) == 9  # three runs, three files: nine distinct keys
    assert len(set(plain.stdout.split() + first.stdout.split() + second.stdout.split())) == 9
    # Without --new the key is what it always was: the plain run still resumes.
    assert run(*args).stdout == plain.stdout
    assert "billed again" in " ".join(run("submit", "--help").stdout.split())


def test_an_interrupted_new_run_does_not_promise_a_resume(
    fake: FakeClient, pngs: list[Path]
) -> None:
    fake.fail_on[2] = KeyboardInterrupt()
    done = run("submit", *map(str, pngs), "--task", "caption", "--new")
    assert done.exit_code == 130
    text = " ".join(done.stderr.split())
    assert "used --new" in text and "to resume" not in text


def test_the_same_file_twice_is_two_jobs(fake: FakeClient, pngs: list[Path]) -> None:
    done = run("submit", str(pngs[0]), str(pngs[0]), "--task", "caption")
    assert done.exit_code == 0, done.stderr
    assert len(set(done.stdout.split())) == 2


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("notes.png", b"just some text\n", "not a PNG, JPEG"),
        ("empty.jpg", b"", "is empty"),
        ("missing.png", None, "no such file"),
    ],
)
def test_one_bad_file_queues_nothing_and_is_named(
    fake: FakeClient,
    pngs: list[Path],
    tmp_path: Path,
    name: str,
    content: bytes | None,
    reason: str,
) -> None:
    bad = tmp_path / name
    if content is not None:
        bad.write_bytes(content)
    done = run("submit", str(pngs[0]), str(bad), str(pngs[1]), "--task", "caption")
    assert done.exit_code == 1
    assert fake.submitted == []
    assert f"{bad}: " in done.stderr and reason in done.stderr
    assert "nothing was submitted" in done.stderr


def test_every_bad_file_is_named_at_once(fake: FakeClient, tmp_path: Path) -> None:
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_text("a")
    two.write_text("b")
    done = run("submit", str(one), str(tmp_path), str(two), "--task", "caption")
    assert done.exit_code == 1 and fake.submitted == []
    text = " ".join(done.stderr.split())
    assert str(one) in text and str(two) in text and "is a directory" in text
    assert ".;" not in text and text.endswith("nothing was submitted")


def test_a_schema_that_is_not_json_queues_nothing(
    fake: FakeClient, pngs: list[Path], tmp_path: Path
) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text("{not json")
    done = run("submit", str(pngs[0]), "--task", "custom", "--schema", str(schema))
    assert done.exit_code == 1 and fake.submitted == []
    assert f"{schema}: not a JSON file" in " ".join(done.stderr.split())


def test_interrupt_says_what_was_submitted_and_how_to_resume(
    fake: FakeClient, pngs: list[Path]
) -> None:
    fake.fail_on[3] = KeyboardInterrupt()
    done = run("submit", *map(str, pngs), "--task", "caption", "--wait")
    assert done.exit_code == 130
    ids = list(fake.jobs)
    assert len(ids) == 2
    text = " ".join(done.stderr.split())
    assert "interrupted: 2 of 3 job(s) submitted" in text
    assert all(job_id in text for job_id in ids)
    assert "run the same command again to resume" in text
    assert "VISIONQ_IDEMPOTENCY_TTL_S" in text


def test_ids_are_shown_as_they_come_with_wait(fake: FakeClient, pngs: list[Path]) -> None:
    done = run("submit", *map(str, pngs), "--task", "caption", "--wait")
    assert done.exit_code == 0, done.stderr
    for job_id in fake.jobs:
        assert f"submitted {job_id}" in done.stderr


def test_a_refusal_midway_names_the_file_and_the_jobs_made(
    fake: FakeClient, pngs: list[Path]
) -> None:
    fake.fail_on[2] = VisionqError(
        422, "corrupt_image", "Image #1: The image cannot be decoded: truncated."
    )
    done = run("submit", *map(str, pngs), "--task", "caption")
    assert done.exit_code == 1
    text = " ".join(done.stderr.split())
    assert f"{pngs[1]}: The image cannot be decoded" in text and "Image #1" not in text
    [job_id] = fake.jobs
    assert "stopped: 1 of 3 job(s) submitted" in text and job_id in text
    assert done.stdout.split() == [job_id]


def test_a_multi_image_refusal_names_the_right_file(fake: FakeClient, pngs: list[Path]) -> None:
    fake.fail_on[1] = VisionqError(415, "unsupported_media_type", "Image #2: not an image.")
    done = run("submit", *map(str, pngs), "--task", "compare")
    assert done.exit_code == 1
    assert f"{pngs[1]}: not an image" in " ".join(done.stderr.split())


def test_options_and_named_flags_are_sent(fake: FakeClient, pngs: list[Path]) -> None:
    done = run(
        "submit", str(pngs[0]), "--task", "caption", "--max-output-tokens", "300",
        "--thinking", "low", "-o", "temperature=0.2", "--option", "media_resolution=LOW",
    )  # fmt: skip
    assert done.exit_code == 0, done.stderr
    assert fake.submitted[0]["options"] == {
        "max_output_tokens": 300,
        "thinking_level": "LOW",
        "temperature": 0.2,
        "media_resolution": "LOW",
    }


def test_submit_json_lists_ids_and_images(fake: FakeClient, pngs: list[Path]) -> None:
    done = run("submit", str(pngs[0]), "--task", "caption", "--json")
    assert done.exit_code == 0, done.stderr
    [job_id] = fake.jobs
    assert json.loads(done.stdout) == [{"id": job_id, "images": "red.png"}]


def test_cancel_of_a_finished_job_says_so(fake: FakeClient) -> None:
    job = make_job(status="succeeded")
    fake.jobs[job.id] = job
    done = run("cancel", job.id)
    assert done.exit_code == 0
    assert done.stdout.strip() == f"job {job.id} already succeeded; nothing to cancel"
    assert fake.cancelled == []


def test_cancel_of_a_queued_job_cancels_it(fake: FakeClient) -> None:
    job = make_job(status="queued")
    fake.jobs[job.id] = job
    done = run("cancel", job.id)
    assert done.exit_code == 0 and done.stdout.strip() == f"{job.id} cancelled"
    assert fake.cancelled == [job.id]


def test_a_rerun_that_finds_a_failed_job_says_how_to_run_it_again(
    fake: FakeClient, pngs: list[Path]
) -> None:
    assert run("submit", str(pngs[0]), "--task", "caption").exit_code == 0
    [(key, job)] = fake.by_key.items()
    fake.by_key[key] = fake.jobs[job.id] = job.model_copy(update={"status": "failed"})
    again = run("submit", str(pngs[0]), "--task", "caption")
    assert again.stdout.split() == [job.id]
    text = " ".join(again.stderr.split())
    assert f"job {job.id} of an earlier run of this command failed" in text
    assert f"visionq retry {job.id}" in text


def test_a_refusal_names_the_right_file_of_two_with_one_base_name(
    fake: FakeClient, tmp_path: Path
) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    first = png_file(tmp_path / "a" / "photo.png", colour="red")
    second = png_file(tmp_path / "b" / "photo.png", colour="blue")
    # The API names the image by the multipart name the client sent (unique per request).
    fake.fail_on[1] = VisionqError(422, "corrupt_image", "Image '2-photo.png': cannot be decoded.")
    done = run("submit", str(first), str(second), "--task", "compare")
    assert done.exit_code == 1
    text = " ".join(done.stderr.split())
    assert f"{second}: cannot be decoded" in text and f"{first}: cannot" not in text


@pytest.mark.parametrize(
    "error",
    [
        VisionqError(401, "unauthorized", "Invalid API key."),
        VisionqError(422, "missing_labels", "Task classify needs at least two non-empty labels."),
        VisionqError(413, "image_too_large", "Image #1 is over the size limit."),
        VisionqError(422, "unknown_model", "Unknown model gemini-9."),
    ],
)
def test_a_refusal_before_any_job_promises_no_resume(
    fake: FakeClient, pngs: list[Path], error: VisionqError
) -> None:
    fake.fail_on[1] = error
    done = run("submit", *map(str, pngs), "--task", "caption")
    assert done.exit_code == 1
    text = " ".join(done.stderr.split())
    assert f"({error.code}, HTTP {error.status})" in text
    assert "stopped: 0 of 3 job(s) submitted" in text
    # The same command fails the same way: nothing to resume, and no hint saying so.
    assert "to resume" not in text and "Idempotency-Key" not in text


@pytest.mark.parametrize(
    ("error", "submitted"),
    [
        # Already submitted jobs are found again by a rerun, whatever stopped it.
        (VisionqError(422, "corrupt_image", "Image #1: cannot be decoded."), 1),
        # Not reached, pushed back or failed: a rerun may get through.
        (VisionqError(0, "unreachable", "cannot reach the visionq API (no answer)"), 0),
        (VisionqError(429, "rate_limited", "Too many requests."), 0),
        (VisionqError(500, "internal_error", "Something broke."), 0),
        (VisionqError(503, "unavailable", "The database is down."), 0),
    ],
)
def test_a_failure_a_rerun_can_get_past_says_how_to_resume(
    fake: FakeClient, pngs: list[Path], error: VisionqError, submitted: int
) -> None:
    fake.fail_on[submitted + 1] = error
    done = run("submit", *map(str, pngs), "--task", "caption")
    assert done.exit_code == 1
    text = " ".join(done.stderr.split())
    assert f"stopped: {submitted} of 3 job(s) submitted" in text
    assert "run the same command again to resume" in text
    # No answer at all has no HTTP status to show.
    assert "HTTP 0" not in text
