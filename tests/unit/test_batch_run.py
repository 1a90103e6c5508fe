"""How `visionq batch run` uploads: chunks, parallel calls, sha256 reuse, Ctrl-C and resuming."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.unit.batch_fakes import (
    FakeBatchApi,
    _photos,
    api,
    ctrl_c_as_in_a_terminal,
    multipart,
)
from tests.unit.cli_fakes import png_file, run
from visionq.cli.batch_chunk import chunks
from visionq.cli.batch_inputs import Source

__all__ = ["api", "ctrl_c_as_in_a_terminal"]  # fixtures used by this module


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
