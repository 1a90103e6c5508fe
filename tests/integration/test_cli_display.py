"""What the CLI shows against a running stack: a cache hit's tier line and what --out
says when --timeout expires before anything finished (see tests/unit/test_cli_display.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_cli import fresh_png, visionq

pytestmark = pytest.mark.integration


def test_a_cache_hit_says_which_job_answered_it(stack: Stack, tmp_path: Path) -> None:
    image = str(fresh_png(tmp_path / "photo.png"))
    first = visionq(stack, "submit", image, "--task", "caption", "--wait", "--json")
    assert first.returncode == 0, first.stderr
    [earlier] = json.loads(first.stdout)
    # --new: a new job (new Idempotency-Key) of the same request, which the cache answers.
    again = visionq(stack, "submit", image, "--task", "caption", "--wait", "--new")
    assert again.returncode == 0, again.stderr
    text = " ".join(again.stdout.split())
    assert f"cached from {earlier['id']} (no charge)" in text
    assert "served not yet" not in text


def test_a_timeout_with_nothing_finished_writes_nothing_and_says_so(
    paused_stack: Stack, tmp_path: Path
) -> None:
    if paused_stack.worker is not None:
        paused_stack.worker.stop()
        paused_stack.worker = None
    images = [str(fresh_png(tmp_path / f"{c}.png", c)) for c in ("red", "blue")]
    out = tmp_path / "out"
    done = visionq(paused_stack, "submit", *images, "--task", "caption", "--no-cache",
                   "--out", str(out), "--timeout", "1")  # fmt: skip
    ids = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("submitted")]
    try:
        assert done.returncode == 1
        text = " ".join(done.stderr.split())
        assert f"no results written to {out}/: none of the 2 job(s) has finished" in text
        assert "results written to" not in text.replace("no results written to", "")
        assert list(out.iterdir()) == []
    finally:
        for job_id in ids:
            visionq(paused_stack, "cancel", job_id)
