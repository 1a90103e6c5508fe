"""Priority in the CLI (issue 23 review 7, 13, 16): `batch run --priority`, the value
checked with the API's wording, and the priority shown by `visionq jobs` / `status`
(jobs_table) and `batch status` (summary_table)."""

from __future__ import annotations

import hashlib
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.unit.cli_fakes import make_job, run
from visionq.cli.batch_inputs import default_name
from visionq.cli.batch_view import summary_table
from visionq.cli.render import jobs_table
from visionq.client.batch_models import Batch

WORDING = "is not a priority; give an integer from 0 to 9 (9 starts first among your jobs)."


def _rendered(renderable: Any, width: int = 140) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def test_jobs_table_has_a_priority_column() -> None:
    high, plain = make_job().model_copy(update={"priority": 9}), make_job()
    lines = _rendered(jobs_table([high, plain])).splitlines()
    header = next(line.split() for line in lines if line.split()[:1] == ["id"])
    column = header.index("pri")
    cells = {line.split()[0]: line.split()[column] for line in lines if high.id in line
             or plain.id in line}  # fmt: skip
    assert cells == {high.id: "9", plain.id: "5"}


def test_batch_status_shows_the_batchs_priority() -> None:
    batch = Batch.model_validate(
        {"id": "b-1", "name": "urgent", "state": "open", "task": "detect",
         "created_at": datetime(2026, 1, 1, tzinfo=UTC).isoformat(), "priority": 8}
    )  # fmt: skip
    text = _rendered(summary_table(batch, None, None))
    rows = [" ".join(line.split()) for line in text.splitlines()]
    assert "priority 8 (0-9, 9 first among your waiting jobs)" in rows


@pytest.mark.parametrize("command", [["submit", "x.png", "--task", "detect"],
                                     ["batch", "run", ".", "--task", "detect"]])  # fmt: skip
@pytest.mark.parametrize("bad", ["12", "-1", "x", "3.5", ""])
def test_a_bad_priority_gets_the_apis_wording(command: list[str], bad: str) -> None:
    result = run(*command, "--priority", bad)
    assert result.exit_code == 2
    assert WORDING in " ".join(result.output.replace("│", " ").split())


def test_batch_run_takes_priority() -> None:
    result = run("batch", "run", "--help")
    assert "--priority" in result.output


def test_default_names_without_priority_stay_as_they_were(tmp_path: Path) -> None:
    """A run without --priority finds the batch an earlier version named (to resume)."""
    defaults: dict[str, Any] = {"task": "detect", "prompt": None, "labels": None,
                                "model": None, "options": {}, "schema": None}  # fmt: skip
    before = hashlib.sha256(
        json.dumps([[os.path.abspath(tmp_path)], "detect", None, None, None, {}, None],
                   sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:8]  # fmt: skip
    assert default_name([tmp_path], **defaults).endswith(f"-detect-{before}")
    assert default_name([tmp_path], **defaults, priority=None).endswith(before)
    assert not default_name([tmp_path], **defaults, priority=9).endswith(before)
