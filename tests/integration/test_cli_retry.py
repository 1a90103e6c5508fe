"""`visionq retry` against a running stack (issue 17): by id (or prefix) and --status."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.conftest import Stack
from tests.integration.helpers import scene_png, submit, wait_done
from tests.integration.test_cli import visionq

pytestmark = pytest.mark.integration


def _failed_job(stack: Stack, seed: int) -> str:
    """A job that failed (the emulator answered 404 while it ran); Gemini works again after."""
    faults = f"{stack.env['VISIONQ_GEMINI_BASE_URL']}/_emulator/faults"
    httpx.post(faults, json={"always_fail": 404}).raise_for_status()
    try:
        with stack.client() as client:
            job = wait_done(client, submit(client, scene_png(seed)[0], task="caption").json()["id"])
    finally:
        httpx.post(faults, json={"always_fail": None}).raise_for_status()
    assert job["status"] == "failed"
    return str(job["id"])


def test_retry_by_id_prefix_waits_and_is_idempotent(stack: Stack) -> None:
    old = _failed_job(stack, 1711)
    done = visionq(stack, "retry", old[:13], "--wait", "--json")
    assert done.returncode == 0, done.stderr
    (new,) = json.loads(done.stdout)
    assert new["retry_of"] == old and new["status"] == "succeeded"
    # The same command again names the same new job: its key comes from the old job's id.
    again = visionq(stack, "retry", old)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == [old, "->", new["id"], "succeeded"]


def test_retry_status_failed_retries_the_newest_failed_jobs(stack: Stack) -> None:
    older, newer = _failed_job(stack, 1712), _failed_job(stack, 1713)
    done = visionq(stack, "retry", "--status", "failed", "--limit", "1")
    assert done.returncode == 0, done.stderr
    old, arrow, new, _ = done.stdout.split()
    assert (old, arrow) == (newer, "->") and new not in (older, newer)
    assert "more failed jobs remain" in done.stderr
    with stack.client() as client:
        assert wait_done(client, new)["retry_of"] == newer


def test_retry_refusals_are_one_line_each_and_exit_1(stack: Stack) -> None:
    done = visionq(stack, "retry", "00000000-0000-4000-8000-000000000000")
    assert done.returncode == 1
    assert "No job 00000000-0000-4000-8000-000000000000" in done.stderr
    assert "Traceback" not in done.stderr
    both = visionq(stack, "retry", "abc", "--status", "failed")
    assert both.returncode == 1 and "not both" in both.stderr
