"""`priority` from the Python client and `visionq submit --priority` (issue 23): sent as the
form's field or the JSON body's integer, part of the job's Idempotency-Key only when given,
and refused by the CLI outside 0..9 before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.cli_fakes import FakeClient, install_fake, make_job, png_file, run
from visionq.cli.idempotency import job_key
from visionq.client import VisionqClient

BASE: dict[str, Any] = {
    "task": "caption", "prompt": None, "labels": None, "model": None, "options": {},
    "schema": None, "image_sha256s": ["a" * 64],
}  # fmt: skip


def _sent(image: Path | str, **fields: Any) -> httpx.Request:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=json.loads(make_job("caption", "queued").model_dump_json()))

    client = VisionqClient("http://api", "k", transport=httpx.MockTransport(answer))
    client.submit(image, task="caption", **fields)
    return seen[0]


def test_the_client_sends_priority_in_the_form_and_in_json(tmp_path: Path) -> None:
    form = _sent(png_file(tmp_path / "a.png"), priority=7)
    assert b'name="priority"\r\n\r\n7\r\n' in form.read()
    body = json.loads(_sent("https://images.example/a.png", priority=0).read())
    assert body["priority"] == 0
    assert "priority" not in json.loads(_sent("https://images.example/a.png").read())


def test_the_key_changes_with_priority_only_when_given() -> None:
    assert job_key(**BASE) == job_key(**BASE, priority=None)
    assert job_key(**BASE, priority=9) not in {job_key(**BASE), job_key(**BASE, priority=8)}


def test_submit_priority_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake: FakeClient = install_fake(monkeypatch)
    image = png_file(tmp_path / "a.png")
    result = run("submit", str(image), "--task", "caption", "--priority", "9")
    assert result.exit_code == 0, result.output
    assert fake.submitted[-1]["priority"] == 9
    refused = run("submit", str(image), "--task", "caption", "--priority", "10")
    assert refused.exit_code == 2 and len(fake.submitted) == 1
