"""`visionq batch` end to end on the real stack (SQLite and PostgreSQL), as a user runs it:
a folder run to its end and its export compared with the jobs row by row, and a run
interrupted by Ctrl-C then resumed (every key one item and one job, no image sent twice).

Each test has a tenant of its own, so counting its jobs sees only its own."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL.PngImagePlugin import PngInfo

from tests.integration.conftest import Stack
from tests.integration.helpers import own_tenant
from tests.services import visionq_command
from visionq.emulator.shapes import random_scene

pytestmark = pytest.mark.integration


def _photo(index: int) -> bytes:
    """A small PNG of its own: the index in a text chunk makes every file's sha256 differ
    even where two random scenes draw alike."""
    image, _ = random_scene(index, width=96, height=96, count=1)
    info = PngInfo()
    info.add_text("index", str(index))
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def _folder(root: Path, count: int) -> list[str]:
    """``count`` images in nested folders under ``root``; their keys (paths relative to it)."""
    keys = []
    for index in range(count):
        key = f"set{index % 3}/part{index % 2}/img{index:03d}.png"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_photo(index))
        keys.append(key)
    return keys


def _tenant(stack: Stack, database_url: str) -> tuple[httpx.Client, dict[str, str]]:
    """A client of a new tenant and the environment that runs the CLI with its key."""
    client = own_tenant(database_url, stack.api_url, f"batch-cli-{uuid.uuid4().hex[:8]}")
    secret = client.headers["Authorization"].removeprefix("Bearer ")
    return client, dict(stack.env, VISIONQ_URL=stack.api_url, VISIONQ_API_KEY=secret)


def _cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        visionq_command(*args), env=env, capture_output=True, text=True, timeout=timeout
    )


def _only_batch(client: httpx.Client) -> dict[str, Any]:
    """The tenant's one batch, with its progress."""
    [listed] = client.get("/v1/batches").raise_for_status().json()["batches"]
    batch: dict[str, Any] = client.get(f"/v1/batches/{listed['id']}").raise_for_status().json()
    return batch


def _jobs(client: httpx.Client, ids: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 100):
        page = client.get("/v1/jobs", params={"ids": ",".join(ids[start : start + 100])})
        found.update((job["id"], job) for job in page.raise_for_status().json()["jobs"])
    return found


def _all_jobs(client: httpx.Client) -> list[str]:
    """The ids of every job of the tenant (all pages)."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/jobs", params=params).raise_for_status().json()
        ids += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if not cursor:
            return ids


def _all_items(client: httpx.Client, batch_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/v1/batches/{batch_id}/items", params=params)
        body = page.raise_for_status().json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items


def _usd(text: str | None) -> Decimal | None:
    return None if text in (None, "") else Decimal(text)


def test_folder_run_waits_then_exports_what_the_jobs_hold(
    stack: Stack, database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    keys = _folder(folder, 60)
    (folder / "set1" / "notes.txt").write_text("not an image\n")
    client, env = _tenant(stack, database_url)
    with client:
        done = _cli(env, "batch", "run", str(folder), "--task", "caption", "--wait")
        assert done.returncode == 0, done.stderr
        assert "skipped: set1/notes.txt" in done.stderr, done.stderr
        batch = _only_batch(client)
        assert batch["item_count"] == 60 and batch["images_received"] == 60
        assert batch["progress"]["counts"]["succeeded"] == 60, batch["progress"]

        jsonl = _cli(env, "batch", "export", batch["name"])
        assert jsonl.returncode == 0, jsonl.stderr
        records = [json.loads(line) for line in jsonl.stdout.splitlines()]
        csv_file = tmp_path / "out.csv"
        exported = _cli(env, "batch", "export", batch["id"], "--format", "csv", "--out",
                        str(csv_file))  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        rows = list(csv.DictReader(io.StringIO(csv_file.read_text(encoding="utf-8"))))

        # In the order the items were added: the CLI walks the folder in name order.
        assert [record["key"] for record in records] == sorted(keys)
        assert [row["key"] for row in rows] == sorted(keys)
        jobs = _jobs(client, [record["job_id"] for record in records])
        assert len(jobs) == 60
        for record, row in zip(records, rows, strict=True):
            job = jobs[record["job_id"]]
            assert row["job_id"] == record["job_id"] == job["id"]
            assert record["status"] == row["status"] == job["status"] == "succeeded"
            assert record["result"] == job["result"]
            assert json.loads(row["result_json"]) == job["result"]
            assert row["text"] == job["result"]["text"]
            assert _usd(record["cost_usd"]) == _usd(row["cost_usd"]) == _usd(job["cost_usd"])
            usage = job["usage"]
            assert record["usage"]["total_tokens"] == usage["total_tokens"]
            assert int(row["total_tokens"]) == usage["total_tokens"]
            assert record["error"] is None and row["error_code"] == ""
            assert record["reruns"] == 0 and row["reruns"] == "0"


def _wait_items(client: httpx.Client, name: str, at_least: int, proc: subprocess.Popen[str]) -> int:
    """Poll the batch named ``name`` until it holds ``at_least`` items; how many it holds."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        listed = client.get("/v1/batches", params={"name": name}).json()["batches"]
        if listed and listed[0]["item_count"] >= at_least:
            return int(listed[0]["item_count"])
        time.sleep(0.02)
    raise AssertionError(f"the run ended (exit {proc.poll()}) before {at_least} items were added")


def test_interrupted_run_resumes_without_sending_anything_twice(
    stack: Stack, database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    keys = _folder(folder, 200)
    name = f"resume-{uuid.uuid4().hex[:8]}"
    client, env = _tenant(stack, database_url)
    command = visionq_command(
        "batch", "run", str(folder), "--task", "caption", "--name", name,
        "--parallel", "2", "--chunk", "5",
    )  # fmt: skip
    with client:
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            seen = _wait_items(client, name, 20, proc)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, stderr
        assert "run the same command to resume" in stderr, stderr
        [stopped] = client.get("/v1/batches", params={"name": name}).json()["batches"]
        assert seen <= stopped["item_count"] < 200, stopped  # the chunks in flight finished

        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert f"{stopped['item_count']:,} item(s) already in it" in again.stderr, again.stderr

        batch = client.get(f"/v1/batches/{stopped['id']}").raise_for_status().json()
        items = _all_items(client, batch["id"])
        assert sorted(item["key"] for item in items) == sorted(keys)  # each key once
        job_ids = [item["job_id"] for item in items]
        assert len(set(job_ids)) == 200
        tenant_jobs = _all_jobs(client)
        assert sorted(tenant_jobs) == sorted(job_ids)  # no job made twice, none astray
        # Nothing uploaded twice: every image reached the API once, as bytes.
        assert batch["item_count"] == 200
        assert (batch["images_received"], batch["images_referenced"]) == (200, 0), batch
        # Let the worker go on to other tests' jobs.
        client.post(f"/v1/batches/{batch['id']}/cancel").raise_for_status()


@pytest.fixture(scope="module")
def small_adds_stack(
    workdir: Path, database_url: str, redis_url: str, emulator_url: str
) -> Iterator[Stack]:
    """An API taking at most 4 items per add or lookup call (no worker: the adds matter)."""
    from tests.integration.conftest import _backend_stack

    built = _backend_stack(
        "small-adds", workdir, database_url, redis_url, emulator_url, with_worker=False,
        extra_env={"VISIONQ_BATCH_MAX_ITEMS_PER_ADD": "4"},
    )  # fmt: skip
    yield built
    built.stop()


def test_a_run_over_the_apis_call_limit_goes_on_and_lists_what_it_left_out(
    small_adds_stack: Stack, database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    keys = _folder(folder, 10)
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not the rest of a PNG")
    # A key of 1,210 UTF-8 bytes in 410 characters: five folders of 80 CJK characters.
    deep = folder.joinpath(*["\u5199" * 80] * 5)
    deep.mkdir(parents=True)
    (deep / "x.png").write_bytes(_photo(99))
    rejected = tmp_path / "rejected.jsonl"
    client, env = _tenant(small_adds_stack, database_url)
    command = ["batch", "run", str(folder), "--task", "caption", "--name", "small", "--chunk",
               "10", "--parallel", "1", "--rejected", str(rejected)]  # fmt: skip
    with client:
        first = _cli(env, *command)
        assert first.returncode == 1, first.stderr  # an item was rejected
        assert "the API took fewer than --chunk 10 items per call: sending 4 at a time" in (
            first.stderr
        )
        assert "x.png: the key is 1,210 bytes of UTF-8, over the 1,024" in first.stderr
        assert f"1 item(s) rejected, not in the batch; listed in {rejected} " in first.stderr
        [line] = [json.loads(text) for text in rejected.read_text().splitlines()]
        assert line["key"] == "bad.png" and line["code"] == "corrupt_image", line
        assert line["input"] == str(folder / "bad.png")
        batch = _only_batch(client)
        assert batch["item_count"] == 10 and batch["expected_items"] == 11
        items = _all_items(client, batch["id"])
        assert sorted(item["key"] for item in items) == sorted(keys)
        # Resumed: the key lookups go 4 at a time too; nothing is added twice.
        again = _cli(env, *command)
        assert again.returncode == 1, again.stderr  # bad.png is still refused
        assert "0 added, 10 already there, 1 rejected, 1 skipped" in again.stdout, again.stdout
        assert _only_batch(client)["item_count"] == 10
