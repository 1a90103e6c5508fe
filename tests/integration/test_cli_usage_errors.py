"""What `visionq batch run` and `visionq submit` say when the command itself is wrong, against
the in-process app (the real client, commands and routes): a field the task needs that no
input gives stops the run before its batch is made; a batch name taken by other defaults is
said once; a refusal a rerun would meet again promises no resume."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.integration.conftest import redis_db
from tests.integration.helpers import scene_png
from tests.integration.inprocess import InProcessApi, in_process_api, in_process_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[InProcessApi]:
    tenant = f"usage-{uuid.uuid4().hex[:8]}"
    with in_process_api(
        Path(tmp_path_factory.mktemp("cli-usage")), redis_db(redis_url), (tenant,)
    ) as app:
        yield app


@pytest.fixture
def cli(api: InProcessApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Run `visionq ARGS` in process, its client wired to the in-process app, in a
    directory of its own (a batch run writes its rejected items' file there)."""
    monkeypatch.chdir(tmp_path)
    return in_process_cli(api, monkeypatch)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in (4101, 4102):
        (photos / f"{seed}.png").write_bytes(scene_png(seed, 96, 96, 1)[0])
    return photos


def _said(result: Result) -> str:
    """stderr as one line (the terminal's wrapping and the error panel's borders out)."""
    return " ".join(result.stderr.replace("│", " ").split())


def _batches(api: InProcessApi, name: str) -> list[dict[str, Any]]:
    (tenant,) = api.keys
    with api.client(tenant) as client:
        found: list[dict[str, Any]] = client.get("/v1/batches", params={"name": name}).json()[
            "batches"
        ]
    return found


def test_a_folder_run_without_the_tasks_labels_makes_no_batch(
    api: InProcessApi, cli: Any, folder: Path
) -> None:
    name = f"cls-{uuid.uuid4().hex[:6]}"
    refused = cli("batch", "run", str(folder), "--task", "classify", "--name", name)
    assert refused.exit_code == 2, refused.output
    text = _said(refused)
    assert "--task classify needs --labels (two or more, comma-separated)" in text
    assert "rejected" not in text and _batches(api, name) == []
    # The same name takes the command with the option added (no 409 "other defaults").
    fixed = cli("batch", "run", str(folder), "--task", "classify", "--name", name,
                "--labels", "cat,dog")  # fmt: skip
    assert fixed.exit_code == 0, fixed.output
    assert "2 added, 0 already there, 0 rejected" in fixed.stdout
    asked = cli("batch", "run", str(folder), "--task", "ask", "--name", f"{name}-ask")
    assert asked.exit_code == 2 and "--task ask needs --prompt (a question)" in _said(asked)


def test_a_name_taken_by_other_defaults_is_said_once(
    api: InProcessApi, cli: Any, folder: Path
) -> None:
    name = f"taken-{uuid.uuid4().hex[:6]}"
    assert cli("batch", "run", str(folder), "--task", "caption", "--name", name).exit_code == 0
    other = cli("batch", "run", str(folder), "--task", "caption", "--name", name,
                "--option", "temperature=1")  # fmt: skip
    assert other.exit_code == 1
    text = _said(other)
    assert f"a batch named {name!r} exists with other defaults" in text
    assert text.count("to resume it") == 1 and text.count("another") == 1, text


@pytest.mark.parametrize(
    "args",
    [
        ["--task", "classify"],
        ["--task", "caption", "--option", "temperature=hot"],
        ["--task", "caption", "--model", "gemini-9"],
    ],
)
def test_a_refused_submit_with_nothing_submitted_promises_no_resume(
    cli: Any, tmp_path: Path, args: list[str]
) -> None:
    image = tmp_path / "tiny.png"
    image.write_bytes(scene_png(4103, 96, 96, 1)[0])
    refused = cli("submit", str(image), *args)
    assert refused.exit_code == 1
    text = _said(refused)
    assert "stopped: 0 of 1 job(s) submitted" in text and "HTTP 422" in text, text
    assert "to resume" not in text and "Idempotency-Key" not in text
