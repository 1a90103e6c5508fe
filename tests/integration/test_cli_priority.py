"""`visionq batch run --priority` on the real stack (issue 23 review 7, 16): the batch and
every job of it carry the priority, and `batch status` and `visionq jobs` show it."""

from __future__ import annotations

import io
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import Stack
from tests.integration.helpers import own_tenant
from tests.services import visionq_command
from visionq.emulator.shapes import random_scene

pytestmark = pytest.mark.integration


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        visionq_command(*args), env=env, capture_output=True, text=True, timeout=120
    )


def test_batch_run_priority_reaches_every_job_and_is_shown(
    stack: Stack, database_url: str, tmp_path: Path
) -> None:
    for index in range(3):
        image, _ = random_scene(index, width=96, height=96, count=1)
        out = io.BytesIO()
        image.save(out, "PNG")
        (tmp_path / f"img{index}.png").write_bytes(out.getvalue())
    client = own_tenant(database_url, stack.api_url, f"prio-cli-{uuid.uuid4().hex[:8]}")
    secret = client.headers["Authorization"].removeprefix("Bearer ")
    # COLUMNS: wide enough for every column of the jobs table (rich drops the last ones).
    env = dict(stack.env, VISIONQ_URL=stack.api_url, VISIONQ_API_KEY=secret, COLUMNS="200")
    with client:
        done = _cli(env, "batch", "run", str(tmp_path), "--task", "caption", "--name", "urgent",
                    "--priority", "9", "--wait")  # fmt: skip
        assert done.returncode == 0, done.stderr
        [listed] = client.get("/v1/batches").raise_for_status().json()["batches"]
        assert listed["priority"] == 9
        jobs = client.get("/v1/jobs").raise_for_status().json()["jobs"]
        assert sorted(job["priority"] for job in jobs) == [9, 9, 9]

        status = _cli(env, "batch", "status", "urgent")
        assert status.returncode == 0, status.stderr
        rows = [" ".join(line.split()) for line in status.stdout.splitlines()]
        assert "priority 9 (0-9, 9 first among your waiting jobs)" in rows, status.stdout

        listing = _cli(env, "jobs")
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.splitlines()
        header = next(line.split() for line in lines if line.split()[:1] == ["id"])
        ids = {job["id"] for job in jobs}
        cells = [line.split() for line in lines]
        shown = {row[0]: row[header.index("pri")] for row in cells if row and row[0] in ids}
        assert shown == {job["id"]: "9" for job in jobs}, listing.stdout

        again = _cli(env, "batch", "run", str(tmp_path), "--task", "caption", "--name", "urgent",
                     "--priority", "2")  # fmt: skip
        assert again.returncode != 0 and "--priority" in again.stderr, again.stderr
