"""scripts/demo installs quietly: pip's warnings are not shown on success, its output is on
failure. Run against a stand-in .venv (a fake python whose pip prints what pip prints, and
a fake visionq), so nothing is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOISE = "BuildBackendWarning: Editable installation."

FAKE_PYTHON = f"""#!/usr/bin/env bash
# Stands in for .venv/bin/python -m pip: warnings on stderr (as pip --quiet passes on the
# build backend's), then the exit status FAKE_PIP_STATUS says.
echo "  {NOISE}" >&2
echo "WARNING: Location 'file:///x/simple/pip/' is ignored" >&2
if [ "${{FAKE_PIP_STATUS:-0}}" != 0 ]; then
    echo "ERROR: No matching distribution found for something" >&2
fi
exit "${{FAKE_PIP_STATUS:-0}}"
"""
FAKE_VISIONQ = '#!/usr/bin/env bash\necho "demo ran with $*"\n'


def _run_demo(tmp_path: Path, pip_status: int) -> subprocess.CompletedProcess[str]:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "demo", tmp_path / "scripts" / "demo")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("python", FAKE_PYTHON), ("visionq", FAKE_VISIONQ)):
        (bin_dir / name).write_text(text, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "FAKE_PIP_STATUS": str(pip_status)}
    return subprocess.run(
        ["bash", "scripts/demo", "--out", "x"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_successful_install_prints_no_pip_warnings(tmp_path: Path) -> None:
    """A new user's run printed ~300 lines of pip and setuptools warnings before the demo."""
    done = _run_demo(tmp_path, 0)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "demo ran with demo --out x\n"
    assert NOISE not in done.stderr and "WARNING" not in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) <= 1, done.stderr  # the "installing" line


@pytest.mark.parametrize("status", [1, 2])
def test_a_failed_install_shows_pips_output_and_stops(tmp_path: Path, status: int) -> None:
    done = _run_demo(tmp_path, status)
    assert done.returncode == status
    assert "ERROR: No matching distribution found" in done.stderr
    assert NOISE in done.stderr  # all of it, to find the cause
    assert "failed (exit status" in done.stderr
    assert "demo ran" not in done.stdout
