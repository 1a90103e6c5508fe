"""constraints.txt pins what CI and the image install, and agrees with pyproject.toml."""

from __future__ import annotations

import os
import re
import shlex

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.deployfiles import CONSTRAINTS_PATH, ROOT, pyproject

# The platform scripts/lock runs on (that of CI and the Docker image): markers of
# pyproject's requirements are evaluated for it.
LOCK_ENVIRONMENT = {
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": "3.11",
    "python_full_version": "3.11.0",
}
_PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")


def pins() -> dict[str, Version]:
    found: dict[str, Version] = {}
    for number, raw in enumerate(CONSTRAINTS_PATH.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.fullmatch(line)
        assert match, f"constraints.txt:{number}: {line!r} is not name==version; run scripts/lock"
        name = canonicalize_name(match["name"])
        assert name not in found, f"constraints.txt pins {name} twice"
        found[name] = Version(match["version"])
    return found


def project_requirements() -> list[Requirement]:
    """Every requirement of the project and its extras, visionq's own extras left out."""
    project = pyproject()["project"]
    lists = [project["dependencies"], *project["optional-dependencies"].values()]
    found = [Requirement(text) for requirements in lists for text in requirements]
    return [requirement for requirement in found if requirement.name != project["name"]]


def test_constraints_are_exact_pins_and_leave_visionq_out() -> None:
    found = pins()
    assert len(found) > 50, "constraints.txt pins the whole install, not a few packages"
    assert canonicalize_name(pyproject()["project"]["name"]) not in found


def test_every_requirement_is_pinned_within_its_range() -> None:
    found = pins()
    for requirement in project_requirements():
        marker = requirement.marker
        if marker is not None and not marker.evaluate({**LOCK_ENVIRONMENT, "extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        assert name in found, f"{requirement} is not in constraints.txt: run scripts/lock"
        assert requirement.specifier.contains(found[name], prereleases=True), (
            f"constraints.txt pins {name}=={found[name]}, outside pyproject's {requirement}: "
            "run scripts/lock"
        )


@pytest.mark.parametrize("name", ["test", "demo"])
def test_the_readme_scripts_install_the_pinned_versions(name: str) -> None:
    script = (ROOT / "scripts" / name).read_text(encoding="utf-8")
    installs = [
        shlex.split(line)
        for line in script.splitlines()
        # scripts/demo's pip_quietly runs pip with its output held back.
        if any(call in line for call in ("pip install", "pip_quietly install"))
        and not line.lstrip().startswith("#")
        and "-e" in line
    ]
    assert installs, f"scripts/{name} no longer installs visionq"
    for argv in installs:
        assert "-c" in argv and argv[argv.index("-c") + 1] == CONSTRAINTS_PATH.name, argv


def test_constraints_say_how_to_refresh_them() -> None:
    header = CONSTRAINTS_PATH.read_text(encoding="utf-8").split("\n", 5)[:4]
    assert any("scripts/lock" in line for line in header)
    lock = ROOT / "scripts" / "lock"
    assert os.access(lock, os.X_OK) and "pip freeze" in lock.read_text(encoding="utf-8")
