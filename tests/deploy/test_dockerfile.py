"""The Dockerfile and .dockerignore build what the services run."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import PurePosixPath

import pytest

from tests.deploy.deployfiles import (
    BUILT_SERVICES,
    CONSTRAINTS_PATH,
    DOCKERIGNORE_PATH,
    ROOT,
    dockerfile,
    dockerfile_args,
    mounts,
    pyproject,
)
from visionq.models.settings import Settings

# --- Dockerfile and .dockerignore --------------------------------------------------------


def test_image_is_python_slim_matching_requires_python() -> None:
    base = dockerfile_args("FROM")[-1].split()[0]
    match = re.fullmatch(r"python:(\d+)\.(\d+)(?:\.\d+)?-slim(?:-\w+)?", base)
    assert match, f"base image {base}"
    minimum = re.search(r">=\s*(\d+)\.(\d+)", pyproject()["project"]["requires-python"])
    assert minimum
    assert (int(match[1]), int(match[2])) >= (int(minimum[1]), int(minimum[2]))


def test_image_runs_as_an_unprivileged_user_in_app() -> None:
    users = dockerfile_args("USER")
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert dockerfile_args("WORKDIR")[-1] == "/app"


def test_image_installs_the_ops_extra_and_no_dev_tools() -> None:
    installs = [shlex.split(run) for run in dockerfile_args("RUN") if "pip install" in run]
    # ops: Flower; s3 and gcs: blobs in an object store (README: Object storage).
    wanted = ".[ops,s3,gcs]"
    assert any(wanted in argv for argv in installs), f"pip install '{wanted}' is missing"
    assert not any("[dev" in arg or arg == "-e" for argv in installs for arg in argv)
    ops = pyproject()["project"]["optional-dependencies"]["ops"]
    assert any(re.match(r"flower\b", requirement) for requirement in ops)


def _pip_installs(run: str) -> list[list[str]]:
    """The `pip install ...` commands of a RUN line (split at &&, || and ;)."""
    commands: list[list[str]] = [[]]
    for word in shlex.split(run):
        if word in ("&&", "||", ";"):
            commands.append([])
        else:
            commands[-1].append(word)
    return [argv for argv in commands if argv[:2] == ["pip", "install"]]


def _constraint_files(argv: list[str]) -> list[str]:
    found = [value for flag, value in itertools.pairwise(argv) if flag in ("-c", "--constraint")]
    return found + [arg.partition("=")[2] for arg in argv if arg.startswith("--constraint=")]


def test_image_installs_the_versions_ci_tested() -> None:
    installs = [argv for run in dockerfile_args("RUN") for argv in _pip_installs(run)]
    assert len(installs) >= 2, "the dependency layer and the project install"
    for argv in installs:
        assert CONSTRAINTS_PATH.name in _constraint_files(argv), (
            f"{' '.join(argv)}: add -c {CONSTRAINTS_PATH.name}, the versions CI tested"
        )
    copied = []
    for keyword, arguments in dockerfile():
        if keyword == "RUN" and _pip_installs(arguments):
            break
        if keyword == "COPY":
            copied += [word for word in shlex.split(arguments) if not word.startswith("--")][:-1]
    assert CONSTRAINTS_PATH.name in copied, f"COPY {CONSTRAINTS_PATH.name} before pip install"


def test_image_copies_everything_the_build_needs() -> None:
    copied = set()
    for arguments in dockerfile_args("COPY"):
        words = [word for word in shlex.split(arguments) if not word.startswith("--")]
        copied |= {PurePosixPath(source).as_posix() for source in words[:-1]}
    if "." in copied:
        return
    project = pyproject()
    needed = {"pyproject.toml", project["project"].get("readme", "pyproject.toml")}
    needed |= set(project["tool"]["setuptools"]["package-dir"].values())
    assert needed <= copied, f"not copied into the image: {needed - copied}"


def test_image_creates_the_volume_mount_points_for_its_user() -> None:
    runs = " ".join(dockerfile_args("RUN"))
    for name in BUILT_SERVICES:
        for _, target, _ in mounts(name):
            assert target in runs and "mkdir" in runs and "chown" in runs, (
                f"{name} mounts {target}: create it owned by the image's user, or the "
                "empty volume belongs to root and the unprivileged process cannot write"
            )


@pytest.mark.parametrize(
    "instruction", [env for env in dockerfile_args("ENV") if "VISIONQ_" in env]
)
def test_image_defaults_are_settings(instruction: str) -> None:
    for item in shlex.split(instruction):
        key = item.partition("=")[0]
        if key.startswith("VISIONQ_"):
            assert key.removeprefix("VISIONQ_").lower() in Settings.model_fields, key


def _docker_ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (exception, regex), in Docker's syntax (*, ?, **, [..], !)."""
    patterns = []
    for raw in DOCKERIGNORE_PATH.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = re.sub(r"\\\[(\\!)?(.*?)\\\]", lambda m: f"[{'^' if m[1] else ''}{m[2]}]", regex)
        patterns.append((exception, re.compile(regex)))
    return patterns


def docker_ignores(path: str) -> bool:
    """Whether the build context leaves out `path` (or a directory above it)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for exception, regex in _docker_ignore_patterns():
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not exception
    return ignored


def test_dockerignore_keeps_secrets_out_and_sources_in() -> None:
    assert docker_ignores(".env"), ".env (the Gemini key) would be sent to the builder"
    assert docker_ignores(".git")
    for arguments in dockerfile_args("COPY"):
        sources = [word for word in shlex.split(arguments) if not word.startswith("--")][:-1]
        for source in sources:
            path = ROOT / source
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                if "__pycache__" in relative:
                    continue
                assert not docker_ignores(relative), f".dockerignore drops {relative}"
