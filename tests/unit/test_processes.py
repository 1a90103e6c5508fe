"""Processes started by `visionq dev` and `demo` never import the user's files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from visionq.cli.processes import ManagedProcess, visionq_command


@pytest.fixture
def user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a models.py (and api.py) that must never be imported."""
    folder = tmp_path / "project"
    folder.mkdir()
    for name in ("models.py", "api.py", "cli.py"):
        (folder / name).write_text("raise RuntimeError('the user module was imported')\n")
    monkeypatch.chdir(folder)
    monkeypatch.setenv("VISIONQ_DATA_DIR", str(tmp_path / "data"))
    return folder


def finished(process: ManagedProcess) -> tuple[int, str]:
    code = process.popen.wait(60)
    process.stop()
    return code, process.log_tail(5000)


def test_a_visionq_subcommand_starts_beside_a_users_models_py(
    user_folder: Path, tmp_path: Path
) -> None:
    process = ManagedProcess("config", visionq_command("config"), log=tmp_path / "config.log")
    code, log = finished(process)
    assert code == 0, log
    assert "the user module" not in log and "database_url" in log


def test_any_python_child_keeps_the_working_directory_off_its_path(
    user_folder: Path, tmp_path: Path
) -> None:
    # What uvicorn or Celery spawn inherits: PYTHONSAFEPATH, not only the -P of our command.
    args = [sys.executable, "-c", "import visionq.models.settings, visionq.api.app; print('ours')"]
    code, log = finished(ManagedProcess("child", args, log=tmp_path / "child.log", env={}))
    assert code == 0, log
    assert "ours" in log
