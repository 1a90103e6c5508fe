"""The wheel installs one package, visionq, that a user's own modules cannot shadow.

Built from a copy of the sources (the checkout stays clean), installed with --no-deps into a
fresh venv that sees this venv's dependencies through a .pth line (not its editable hook),
then imported from a folder holding its own client.py, models.py and api/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
FOLDERS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]

# What a user's project may well hold: each would shadow a bare top-level `client`, `models`
# or `api` package, as the wheel installed them before.
USER_FILES = {
    "client.py": "raise SystemExit('the user client.py was imported')\n",
    "models.py": "raise SystemExit('the user models.py was imported')\n",
    "api/__init__.py": "raise SystemExit('the user api/ was imported')\n",
}

PROBE = """
import json, sys
from importlib import resources

from visionq.client import VisionqClient
import visionq
import visionq.api.app
import visionq.models.migrate as migrate
from visionq.vision.catalogue import load_catalogue
from visionq.emulator.catalog_load import builtin_raw

print(json.dumps({
    "client": VisionqClient.__module__,
    "visionq": visionq.__file__,
    "all": sorted(visionq.__all__),
    "typed": resources.files("visionq").joinpath("py.typed").is_file(),
    "migrations": sorted(p.name for p in migrate.MIGRATIONS_DIR.rglob("*.py*")),
    "catalogue": bool(load_catalogue()),
    "emulator": bool(builtin_raw()),
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """visionq's wheel, built from a copy of the files the build reads."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in FOLDERS.values():
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path_factory.mktemp("dist")
    # Verbose, for the build backend's output (pip shows it only so): kept next to the wheel.
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--verbose", "--no-deps",
         "--wheel-dir", str(out), str(source)],
        check=True, timeout=120, capture_output=True, text=True,
    )  # fmt: skip
    (out / "build.log").write_text(built.stdout + built.stderr, encoding="utf-8")
    return next(out.glob("visionq-*.whl"))


def test_the_build_warns_of_no_unlisted_package(wheel: Path) -> None:
    """A data folder (no __init__.py) left out of pyproject's ``packages`` still ships, but
    setuptools warned about each one on every install (a new user's ``scripts/demo`` printed
    five such warnings)."""
    log = (wheel.parent / "build.log").read_text("utf-8")
    assert "absent from the `packages` configuration" not in log, log[-3000:]


def test_wheel_holds_one_top_level_package_with_every_module(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"visionq"}, f"the wheel installs more than visionq: {top}"
    assert "visionq/py.typed" in names
    for package, folder in FOLDERS.items():
        for module in (ROOT / folder).rglob("*.py"):
            if "__pycache__" in module.parts:
                continue
            inside = module.relative_to(ROOT / folder).as_posix()
            shipped = f"{package.replace('.', '/')}/{inside}"
            assert shipped in names, f"{shipped} is not in the wheel: list its package in pyproject"


def test_wheel_ships_every_console_file(wheel: Path) -> None:
    # The console's HTML, CSS, SVG and JS are package data, not modules: pyproject lists
    # their patterns, and a file of a new kind would be left out of the image silently.
    names = set(zipfile.ZipFile(wheel).namelist())
    console = ROOT / FOLDERS["visionq.api"] / "console"
    shipped = [path for path in console.rglob("*") if path.is_file()]
    assert shipped, "api/console holds no files"
    for path in shipped:
        inside = f"visionq/api/console/{path.relative_to(console).as_posix()}"
        assert inside in names, f"{inside} is not in the wheel: add it to pyproject's package-data"


def test_installed_wheel_imports_past_a_users_client_models_and_api(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # This venv's dependencies, as a plain path: its .pth files (the editable hook) are not run.
    ours = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "deps.pth").write_text(ours + "\n", encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(wheel)],
        check=True, timeout=120,
    )  # fmt: skip
    user = tmp_path / "project"
    for name, text in USER_FILES.items():
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_text(text, encoding="utf-8")
    done = subprocess.run(
        [python, "-c", PROBE], cwd=user, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr or done.stdout
    seen = json.loads(done.stdout)
    assert seen["client"] == "visionq.client.api"
    assert Path(seen["visionq"]).is_relative_to(site), f"not the installed wheel: {seen}"
    assert seen["all"] == sorted(__import__("visionq").__all__)
    assert seen["typed"] and seen["migrations"] and seen["catalogue"] and seen["emulator"]
