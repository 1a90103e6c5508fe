"""Which inputs `visionq batch run` adds, skips or rejects, and the batches it will not add to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.batch_fakes import FakeBatchApi, _photos, api, ctrl_c_as_in_a_terminal
from tests.unit.cli_fakes import png_file, run

__all__ = ["api", "ctrl_c_as_in_a_terminal"]  # fixtures used by this module


def test_a_folder_run_adds_every_image_and_lists_the_rest_as_skipped(
    api: FakeBatchApi, tmp_path: Path
) -> None:
    photos = _photos(tmp_path / "photos", 6)
    result = run("batch", "run", str(photos), "--task", "caption", "--name", "photos")
    assert result.exit_code == 0, result.output
    (batch,) = api.batches.values()
    assert sorted(batch.items) == sorted(
        ["p00.png", "p02.png", "p04.png", "sub/p01.png", "sub/p03.png", "sub/p05.png"]
    )
    # Told apart by their first bytes before anything is sent: notes.txt is no item.
    assert batch.expected_items == 6
    assert "batch photos: 6 item(s) (1 other file(s) to skip);" in result.stderr
    assert "skipped: notes.txt: " in result.stderr
    assert "6 added, 0 already there, 0 rejected, 1 skipped" in result.stdout
    assert len(api.uploaded) == 6 and batch.received == 6


def test_other_options_under_the_same_name_are_refused(api: FakeBatchApi, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 2)
    assert run("batch", "run", str(photos), "-t", "caption", "--name", "b").exit_code == 0
    other = run("batch", "run", str(photos), "-t", "caption", "--name", "b", "-o", "temperature=1")
    assert other.exit_code == 1
    text = " ".join(other.stderr.split())
    assert "a batch named 'b' exists with other defaults: this run's task," in text
    # Said once, in the CLI's words: the API's own message (its advice) is not repeated.
    assert text.count("give another --name") == 1 and "Batch b exists" not in text


@pytest.mark.parametrize(
    ("task", "option", "value"),
    [("classify", "--labels", "cat,dog"), ("ask", "--prompt", "what is it?")],
)
def test_a_field_no_file_can_give_is_asked_for_before_the_batch_is_made(
    api: FakeBatchApi, tmp_path: Path, task: str, option: str, value: str
) -> None:
    photos = _photos(tmp_path / "photos", 3, extra=False)
    command = ["batch", "run", str(photos), "-t", task, "--name", "b"]
    refused = run(*command)
    assert refused.exit_code == 2  # a usage error, as a bad option is
    text = " ".join(refused.stderr.replace("│", " ").split())
    assert f"--task {task} needs {option} (" in text and "nothing was sent" in text
    assert api.requests == []  # no batch made: the same name takes the fixed command
    fixed = run(*command, option, value)
    assert fixed.exit_code == 0, fixed.output
    (batch,) = api.batches.values()
    assert batch.name == "b" and len(batch.items) == 3


def test_rejected_items_are_named_listed_in_a_file_and_exit_1(
    api: FakeBatchApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = _photos(tmp_path / "photos", 3, extra=False)
    monkeypatch.chdir(tmp_path)
    api.reject = {"sub/p01.png"}
    result = run("batch", "run", str(photos), "-t", "caption", "--name", "my/batch")
    assert result.exit_code == 1
    assert "rejected: sub/p01.png: corrupt_image: Image 'x': cannot be read." in result.stderr
    assert "2 added, 0 already there, 1 rejected" in result.stdout
    listing = tmp_path / "my_batch.rejected.jsonl"
    assert f"1 item(s) rejected, not in the batch; listed in {listing.name} " in result.stderr
    assert "fix them and run the same command again to add them" in result.stderr
    assert [json.loads(line) for line in listing.read_text().splitlines()] == [
        {"key": "sub/p01.png", "code": "corrupt_image", "message": "Image 'x': cannot be read.",
         "input": str(photos / "sub" / "p01.png")}
    ]  # fmt: skip
    api.reject = set()
    clean = run("batch", "run", str(photos), "-t", "caption", "--name", "other")
    assert clean.exit_code == 0, clean.output
    assert not (tmp_path / "other.rejected.jsonl").exists()  # none rejected, no file
    assert "rejected, not in the batch" not in clean.stderr


def test_rejected_names_the_file_and_the_terminal_shows_the_first_20(
    api: FakeBatchApi, tmp_path: Path
) -> None:
    photos = _photos(tmp_path / "photos", 25, extra=False)
    api.reject = {f"p{i:02}.png" for i in range(0, 25, 2)} | {
        f"sub/p{i:02}.png" for i in range(1, 25, 2)
    }
    listing = tmp_path / "out" / "rejected.jsonl"
    listing.parent.mkdir()
    result = run("batch", "run", str(photos), "-t", "caption", "--rejected", str(listing))
    assert result.exit_code == 1
    assert result.stderr.count("rejected: ") == 20
    assert f"25 item(s) rejected, not in the batch; listed in {listing} " in result.stderr
    lines = [json.loads(line) for line in listing.read_text().splitlines()]
    assert len(lines) == 25 and {line["code"] for line in lines} == {"corrupt_image"}
    api.reject = set()
    again = run("batch", "run", str(photos), "-t", "caption", "--rejected", str(listing))
    assert again.exit_code == 0, again.output
    assert listing.read_text() == ""  # given: written anew, empty when nothing was rejected


def test_open_batch_takes_typed_defaults(api: FakeBatchApi) -> None:
    from visionq.cli.batch_flow import BatchDefaults, open_batch
    from visionq.client import VisionqClient

    defaults = BatchDefaults("classify", labels=["cat", "dog"], options={"temperature": 0.5})
    with VisionqClient("http://api.test", "vq-test", transport=api.transport()) as client:
        batch = open_batch(client, "typed", defaults, expected_items=3)
    assert batch.task == "classify" and batch.labels == ["cat", "dog"]
    assert api.batches[batch.id].defaults == {
        "task": "classify", "labels": ["cat", "dog"], "options": {"temperature": 0.5}
    }  # fmt: skip


def test_skipped_file_lists_every_skipped_file(api: FakeBatchApi, tmp_path: Path) -> None:
    folder = _photos(tmp_path / "photos", 1, extra=False)
    for index in range(25):
        (folder / f"n{index:02}.txt").write_text("text")
    listing = tmp_path / "skipped.txt"
    result = run("batch", "run", str(folder), "-t", "caption", "--skipped", str(listing))
    assert result.exit_code == 0, result.output
    assert result.stderr.count("skipped: n") == 20
    lines = listing.read_text().splitlines()
    assert len(lines) == 25 and lines[0].startswith("n00.txt: ")


def test_bad_inputs_send_nothing(api: FakeBatchApi, tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"image": "missing.png"}\n')
    result = run("batch", "run", str(manifest), "-t", "caption")
    assert result.exit_code == 1
    assert "missing.png: no such file; nothing was sent" in result.stderr
    assert api.requests == []


def test_a_manifest_run_sends_overrides(api: FakeBatchApi, tmp_path: Path) -> None:
    png_file(tmp_path / "a.png")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"key": "k1", "image": "a.png", "prompt": "how many?"}) + "\n"
        + json.dumps({"key": "k2", "image": "https://example.test/b.png"}) + "\n"
    )  # fmt: skip
    result = run("batch", "run", str(manifest), "-t", "ask", "--prompt", "what?")
    assert result.exit_code == 0, result.output
    (batch,) = api.batches.values()
    assert batch.defaults["prompt"] == "what?"
    assert batch.items["k1"].fields == {"prompt": "how many?"}
    assert batch.items["k2"].fields == {}


def test_closed_and_cancelled_batches_are_not_added_to(api: FakeBatchApi, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 2, extra=False)
    command = ["batch", "run", str(photos), "-t", "caption", "--name", "b"]
    assert run(*command).exit_code == 0
    assert run("batch", "close", "b").stdout.endswith("closed\n")
    closed = run(*command)
    assert closed.exit_code == 1 and "is closed" in closed.stderr
    assert run("batch", "cancel", "b").exit_code == 0
    cancelled = run(*command)
    assert cancelled.exit_code == 1 and "was cancelled" in cancelled.stderr


def test_a_folder_without_images_is_an_error(api: FakeBatchApi, tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    result = run("batch", "run", str(folder), "-t", "caption")
    assert result.exit_code == 1
    assert "none of the 1 file(s) is an image that can be sent; nothing was added" in result.stderr
    assert api.requests == []  # told before a batch is created
