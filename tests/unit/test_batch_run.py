"""`visionq batch ...` in-process against a fake batch API (tests/unit/batch_fakes.py): the
real client and CLI, so the requests counted are the ones a real run sends."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.unit.batch_fakes import FakeBatchApi, install_batch_api, multipart
from tests.unit.cli_fakes import png_file, run
from visionq.cli.batch_chunk import chunks
from visionq.cli.batch_inputs import Source


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeBatchApi:
    return install_batch_api(monkeypatch)


@pytest.fixture(autouse=True)
def ctrl_c_as_in_a_terminal() -> Iterator[None]:
    """Ctrl-C as a terminal delivers it: a shell that starts the run in the background
    without job control (`cmd &` in a script) makes SIGINT ignored, and Python keeps it so."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _photos(folder: Path, count: int, *, extra: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        sub = folder / ("sub" if index % 2 else "")
        sub.mkdir(exist_ok=True)
        png_file(sub / f"p{index:02}.png", size=(8 + index, 8))
    if extra:
        (folder / "notes.txt").write_text("not an image")
    return folder


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


def test_the_same_command_again_uploads_nothing(api: FakeBatchApi, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 6)
    first = run("batch", "run", str(photos), "--task", "caption")
    assert first.exit_code == 0, first.output
    posts = len(api.add_calls)
    again = run("batch", "run", str(photos), "--task", "caption")
    assert again.exit_code == 0, again.output
    assert len(api.batches) == 1  # the default name is the same: the batch is found again
    assert "resuming batch photos-caption-" in again.stderr
    assert "0 added, 6 already there" in again.stdout
    assert len(api.add_calls) == posts and len(api.uploaded) == 6


def test_other_options_under_the_same_name_are_refused(api: FakeBatchApi, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 2)
    assert run("batch", "run", str(photos), "-t", "caption", "--name", "b").exit_code == 0
    other = run("batch", "run", str(photos), "-t", "caption", "--name", "b", "-o", "temperature=1")
    assert other.exit_code == 1
    assert "give another --name" in other.stderr and "Batch b exists" in other.stderr


def test_images_this_key_stored_are_sent_by_sha256(api: FakeBatchApi, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 4, extra=False)
    assert run("batch", "run", str(photos), "-t", "caption", "--name", "one").exit_code == 0
    second = run("batch", "run", str(photos), "-t", "caption", "--name", "two")
    assert second.exit_code == 0, second.output
    two = next(b for b in api.batches.values() if b.name == "two")
    assert len(two.items) == 4 and two.referenced == 4 and two.received == 0
    assert len(api.uploaded) == 4  # the first batch's uploads only


def test_an_image_twice_in_a_chunk_is_sent_once(api: FakeBatchApi, tmp_path: Path) -> None:
    folder = tmp_path / "same"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        png_file(folder / name)  # identical bytes
    result = run("batch", "run", str(folder), "-t", "caption")
    assert result.exit_code == 0, result.output
    assert len(api.uploaded) == 1
    (batch,) = api.batches.values()
    assert len(batch.items) == 3


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


def test_chunks_and_parallel_uploads(api: FakeBatchApi, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 25, extra=False)
    result = run("batch", "run", str(photos), "-t", "caption", "--chunk", "4", "--parallel", "3")
    assert result.exit_code == 0, result.output
    assert [len(call["items"]) for call in api.add_calls].count(4) == 6
    assert sum(len(call["items"]) for call in api.add_calls) == 25
    (batch,) = api.batches.values()
    assert len(batch.items) == 25 and len(api.uploaded) == 25


def test_ctrl_c_stops_the_upload_and_the_same_command_resumes_it(
    api: FakeBatchApi, tmp_path: Path
) -> None:
    photos = _photos(tmp_path / "photos", 10, extra=False)
    command = ["batch", "run", str(photos), "-t", "caption", "--chunk", "2", "--parallel", "1"]

    def interrupt() -> None:
        api.on_add = None
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the request in flight still completes

    api.on_add = interrupt
    first = run(*command)
    assert first.exit_code == 130, first.output
    assert "interrupted: batch photos-caption-" in first.stderr
    assert "holds 2 item(s) (this run: 2 added, 0 found already there, of its 10 input(s))" in (
        first.stderr
    )
    assert "run the same command to resume" in first.stderr
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    second = run(*command)
    assert second.exit_code == 0, second.output
    assert "8 added, 2 already there" in second.stdout
    (batch,) = api.batches.values()
    assert len(batch.items) == 10
    assert len(api.uploaded) == 10 == len(set(api.uploaded))  # nothing uploaded twice


def test_an_interrupted_resume_says_what_the_batch_holds(api: FakeBatchApi, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 10, extra=False)
    command = ["batch", "run", str(photos), "-t", "caption", "--chunk", "2", "--parallel", "1"]
    assert run(*command).exit_code == 0
    original = api.handle
    fired = False

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal fired
        if request.url.path.endswith("/lookup") and not fired:
            fired = True
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the lookup in flight still completes
        return original(request)

    api.handle = handle  # type: ignore[method-assign]
    resumed = run(*command)
    assert resumed.exit_code == 130, resumed.output
    # The batch holds all 10 (the first run's); this run had looked up 2 keys of them.
    assert "holds 10 item(s) (this run: 0 added, 2 found already there, of its 10 input(s))" in (
        resumed.stderr
    )
    assert "in batch 2/10 (already there 2)" in resumed.stderr  # nothing counted as uploaded


def test_wait_ends_with_a_summary_and_the_exit_code(api: FakeBatchApi, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 3, extra=False)
    done = run("batch", "run", str(photos), "-t", "caption", "--wait")
    assert done.exit_code == 0, done.output
    assert "succeeded 3" in done.stdout and "wall time" in done.stdout
    api.status_on_create = "failed"
    failed = run("batch", "run", str(photos), "-t", "caption", "--name", "f", "--wait", "--json")
    assert failed.exit_code == 1
    assert json.loads(failed.stdout)["progress"]["counts"]["failed"] == 3


def test_a_failed_wait_says_why_by_error_code_and_what_to_run_next(
    api: FakeBatchApi, tmp_path: Path
) -> None:
    photos = _photos(tmp_path / "photos", 3, extra=False)
    api.status_on_create = "failed"
    api.error_code_on_create = "gemini_refused"
    failed = run("batch", "run", str(photos), "-t", "caption", "--name", "my b", "--wait")
    assert failed.exit_code == 1
    steps = [
        "3 item(s) failed, by error code: gemini_refused 3",
        "see them: visionq batch export 'my b' --status failed",
        "re-run them: visionq batch rerun 'my b' (only one code: --error-code gemini_refused)",
    ]
    assert all(step in failed.stderr for step in steps), failed.stderr
    status = run("batch", "status", "my b")
    assert all(step in status.stderr for step in steps), status.stderr
    api.batches[next(iter(api.batches))].items["p00.png"].status = "cancelled"
    cancelled = run("batch", "status", "my b", "--json")
    assert "2 item(s) failed, by error code: gemini_refused 2" in cancelled.stderr
    assert "1 item(s) cancelled; re-run them: visionq batch rerun 'my b' --include-cancelled" in (
        cancelled.stderr
    )
    api.status_on_create = "succeeded"
    fine = run("batch", "run", str(photos), "-t", "caption", "--name", "ok", "--wait")
    assert fine.exit_code == 0 and "by error code" not in fine.stderr


def test_wait_timeout_says_the_batch_keeps_running(api: FakeBatchApi, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 2, extra=False)
    api.status_on_create = "queued"
    result = run("batch", "run", str(photos), "-t", "caption", "--wait", "--timeout", "0")
    assert result.exit_code == 1
    assert "--timeout expired; the batch keeps running: visionq batch status" in result.stderr


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


def test_status_list_rerun(api: FakeBatchApi, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 3, extra=False)
    api.status_on_create = "failed"
    assert run("batch", "run", str(photos), "-t", "caption", "--name", "b").exit_code == 0
    (batch,) = api.batches.values()
    status = run("batch", "status", "b")
    assert status.exit_code == 0 and "failed 3" in status.stdout
    by_id = run("batch", "status", batch.id, "--json")
    assert json.loads(by_id.stdout)["name"] == "b"
    listed = run("batch", "list", "--json")
    assert [entry["name"] for entry in json.loads(listed.stdout)] == ["b"]
    lines = run("batch", "list").stdout.splitlines()
    assert lines[0].split() == ["id", "state", "items", "task", "created", "name"]
    assert lines[1].split()[:4] == [batch.id, "open", "3", "caption"] and lines[1].endswith(" b")
    rerun = run("batch", "rerun", "b", "--error-code", "nope", "--model", "m2")
    assert rerun.exit_code == 0 and rerun.stdout == (
        "nothing to re-run in batch b: no failed item has error code nope; their codes: x 3\n"
    )
    rerun = run("batch", "rerun", "b")
    assert "3 item(s) of batch b re-run" in rerun.stdout
    api.status_on_create = "succeeded"  # the new jobs are queued in the fake: none failed now
    again = run("batch", "rerun", "b")
    assert again.stdout == "nothing to re-run in batch b: no item is failed\n"
    missing = run("batch", "status", "nope")
    assert missing.exit_code == 1 and "no batch named 'nope'" in missing.stderr


def test_export_jsonl_to_stdout_and_csv_to_a_file(api: FakeBatchApi, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 3, extra=False)
    assert run("batch", "run", str(photos), "-t", "caption", "--name", "b").exit_code == 0
    exported = run("batch", "export", "b")
    assert exported.exit_code == 0, exported.output
    keys = [json.loads(line)["key"] for line in exported.stdout.splitlines()]
    assert keys == ["p00.png", "p02.png", "sub/p01.png"]
    out = tmp_path / "out" / "results.jsonl"
    out.parent.mkdir()
    assert run("batch", "export", "b", "--out", str(out)).exit_code == 0
    assert len(out.read_text().splitlines()) == 3
    assert [path.name for path in out.parent.iterdir()] == ["results.jsonl"]  # no temp file
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temporary file's 0600
    no_out = run("batch", "export", "b", "--format", "parquet")
    assert no_out.exit_code == 1 and "give --out FILE" in no_out.stderr


def test_chunks_hold_at_most_the_bytes_limit(tmp_path: Path) -> None:
    sources = []
    for index, size in enumerate([40, 40, 40, 200, 10]):
        path = tmp_path / f"{index}.bin"
        path.write_bytes(b"x" * size)
        sources.append(Source(key=path.name, images=(path,)))
    sizes = [[source.key for source in chunk] for chunk in chunks(sources, 3, 100)]
    assert sizes == [["0.bin", "1.bin"], ["2.bin"], ["3.bin"], ["4.bin"]]
    by_count = [len(chunk) for chunk in chunks(sources, 2, 10_000)]
    assert by_count == [2, 2, 1]


def test_the_upload_holds_at_most_parallel_chunks(api: FakeBatchApi, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 12, extra=False)
    in_flight = 0
    most = 0
    lock = threading.Lock()

    def slow() -> None:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.05)
        with lock:
            in_flight -= 1

    api.on_add = slow
    result = run("batch", "run", str(photos), "-t", "caption", "--chunk", "1", "--parallel", "2")
    assert result.exit_code == 0, result.output
    assert most == 2


def _at_most(api: FakeBatchApi, limit: int, *, named: bool = True) -> list[tuple[str, int]]:
    """Make the fake refuse add and lookup calls of more than ``limit`` items whole (422
    too_many_items), as the API does; the calls' (route, size), refused ones included."""
    original = api.handle
    calls: list[tuple[str, int]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        route = request.url.path.rsplit("/", 1)[-1]
        if request.method == "POST" and route in ("items", "lookup"):
            if route == "lookup":
                body = json.loads(request.content)
                size = max(len(body["keys"]), len(body["sha256s"]))
            elif request.headers["content-type"].startswith("multipart/"):
                size = len(multipart(request)[0]["items"])
            else:
                size = len(json.loads(request.content)["items"])
            calls.append((route, size))
            if size > limit:
                says = f"at most {limit} per call" if named else "send fewer per call"
                return httpx.Response(
                    422, json={"error": {"code": "too_many_items", "message": f"{size}; {says}."}}
                )
        return original(request)

    api.handle = handle  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("named", [True, False])
def test_a_chunk_over_the_apis_limit_is_sent_in_pieces(
    api: FakeBatchApi, tmp_path: Path, named: bool
) -> None:
    photos = _photos(tmp_path / "photos", 7, extra=False)
    calls = _at_most(api, 2, named=named)
    command = ["batch", "run", str(photos), "-t", "caption", "--chunk", "5", "--parallel", "1"]
    result = run(*command)
    assert result.exit_code == 0, result.output
    assert "the API took fewer than --chunk 5 items per call: sending 2 at a time" in (
        result.stderr
    )
    (batch,) = api.batches.values()
    assert len(batch.items) == 7 and len(api.uploaded) == 7 == len(set(api.uploaded))
    assert "7 added, 0 already there" in result.stdout
    refused = [size for route, size in calls if size > 2]
    # Refused once (the limit named, or half of 5); the later chunks are built at size 2.
    assert refused == [5]
    calls.clear()
    again = run(*command)  # resumed: the key lookups go in pieces too
    assert again.exit_code == 0, again.output
    assert "0 added, 7 already there" in again.stdout
    assert all(route == "lookup" for route, _ in calls)
    assert sorted(size for _, size in calls if size <= 2) == [1, 2, 2, 2]


def test_a_refused_add_stops_the_run_and_says_how_to_resume(
    api: FakeBatchApi, tmp_path: Path
) -> None:
    photos = _photos(tmp_path / "photos", 4, extra=False)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/items") and request.method == "POST":
            return httpx.Response(
                409, json={"error": {"code": "batch_closed", "message": "The batch is closed."}}
            )
        return original(request)

    original = api.handle
    api.handle = handle  # type: ignore[method-assign]
    result = run("batch", "run", str(photos), "-t", "caption", "--chunk", "3")
    assert result.exit_code == 1
    assert "The batch is closed. (batch_closed, HTTP 409)" in result.stderr
    assert "stopped: batch photos-caption-" in result.stderr
    assert "holds 0 item(s) (this run: 0 added, 0 found already there, of its 4 input(s))" in (
        result.stderr
    )


def test_ctrl_c_while_waiting_leaves_the_batch_running(api: FakeBatchApi, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 2, extra=False)
    api.status_on_create = "queued"
    original = api.handle
    polls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal polls
        if request.method == "GET" and request.url.path.count("/") == 3:
            polls += 1
            if polls == 3:  # the upload asks twice (during, at its end), --wait then
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)
        return original(request)

    api.handle = handle  # type: ignore[method-assign]
    result = run("batch", "run", str(photos), "-t", "caption", "--name", "b", "--wait")
    assert result.exit_code == 130, result.output
    assert "interrupted; the batch keeps running: visionq batch status b" in result.stderr
    (batch,) = api.batches.values()
    assert batch.state == "open" and len(batch.items) == 2


def test_a_folder_without_images_is_an_error(api: FakeBatchApi, tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    result = run("batch", "run", str(folder), "-t", "caption")
    assert result.exit_code == 1
    assert "none of the 1 file(s) is an image that can be sent; nothing was added" in result.stderr
    assert api.requests == []  # told before a batch is created


def test_sha256_lookups_stay_within_the_chunk_size(api: FakeBatchApi, tmp_path: Path) -> None:
    for index in range(6):
        png_file(tmp_path / f"{index}.png", size=(8 + index, 8))
    manifest = tmp_path / "pairs.jsonl"
    manifest.write_text(
        "".join(
            json.dumps({"key": f"k{i}", "images": [f"{2 * i}.png", f"{2 * i + 1}.png"]}) + "\n"
            for i in range(3)
        )
    )
    sizes: list[int] = []
    original = api.handle

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/lookup"):
            sizes.append(len(json.loads(request.content)["sha256s"]))
        return original(request)

    api.handle = handle  # type: ignore[method-assign]
    result = run("batch", "run", str(manifest), "-t", "compare", "--chunk", "3")
    assert result.exit_code == 0, result.output
    assert sizes == [3, 3] and len(api.uploaded) == 6
    (batch,) = api.batches.values()
    assert [len(item.images) for item in batch.items.values()] == [2, 2, 2]


def test_url_items_need_no_sha256_lookup(api: FakeBatchApi, tmp_path: Path) -> None:
    manifest = tmp_path / "urls.jsonl"
    manifest.write_text(json.dumps({"key": "u", "image": "https://example.test/a.png"}) + "\n")
    result = run("batch", "run", str(manifest), "-t", "caption")
    assert result.exit_code == 0, result.output
    assert not any(path.endswith("/lookup") for _, path in api.requests)
    assert api.add_calls == [
        {"items": [{"key": "u", "images": [{"url": "https://example.test/a.png"}]}]}
    ]


def test_help_texts_keep_their_brackets_and_export_status_has_choices(
    api: FakeBatchApi, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from visionq.cli.main import app

    wide = CliRunner().invoke(app, ["batch", "export", "--help"], env={"COLUMNS": "300"})
    # Rich reads "[parquet]" as markup and drops it unless escaped.
    assert "pip install 'visionq[parquet]'" in wide.stdout
    assert "<queued|running|succeeded|failed|cancelled|expired>" in wide.stdout
    photos = _photos(tmp_path / "photos", 1, extra=False)
    assert run("batch", "run", str(photos), "-t", "caption", "--name", "b").exit_code == 0
    bad = run("batch", "export", "b", "--status", "done")
    assert bad.exit_code == 2 and "'done' is not one of" in bad.stderr
    assert not any(path.endswith("/results") for _, path in api.requests)


EXPORT_TO_A_PIPE = """
import json
import time

import httpx

from tests.unit.batch_fakes import FakeBatch, FakeBatchApi, FakeItem, export_record
from visionq.cli import common
from visionq.cli.main import app
from visionq.client import VisionqClient

api = FakeBatchApi()
batch = FakeBatch("b1", "b", {"task": "caption"}, None)
for index in range(3000):
    key = f"photo-{index:05}.png"
    batch.items[key] = FakeItem(key, f"job-{index}", [], {}, status="succeeded")
api.batches[batch.id] = batch


def lines():  # as a real export arrives: a line at a time, the reader gone meanwhile
    for item in batch.items.values():
        yield (json.dumps(export_record(item)) + "\\n").encode()
        time.sleep(0.001)


api._results = lambda batch, request: httpx.Response(200, content=lines())
common.VisionqClient = lambda url, key, **_: VisionqClient(url, key, transport=api.transport())
app(["batch", "export", "b"])
"""


def test_export_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = dict(os.environ, VISIONQ_API_KEY="vq-test")
    child = subprocess.Popen(
        [sys.executable, "-c", EXPORT_TO_A_PIPE], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    first = child.stdout.readline()  # `| head -1`
    child.stdout.close()
    stderr = child.stderr.read().decode()
    child.stderr.close()
    assert child.wait(timeout=60) == 128 + signal.SIGPIPE, stderr
    assert json.loads(first)["key"] == "photo-00000.png"
    assert stderr == ""  # no "error: cannot write stdout: Broken pipe", no traceback
