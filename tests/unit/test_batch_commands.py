"""`visionq batch run --wait`, then status, list, rerun and export, against the fake batch API."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx

from tests.unit.batch_fakes import FakeBatchApi, _photos, api, ctrl_c_as_in_a_terminal
from tests.unit.cli_fakes import run

__all__ = ["api", "ctrl_c_as_in_a_terminal"]  # fixtures used by this module


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
