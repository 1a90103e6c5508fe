"""What .ci/run sets for the command that runs scripts/test: the tests that check CI never
skips a required group (browser, multi-host, object store) read it through here."""

from __future__ import annotations

import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def environment_of(line: str) -> dict[str, str]:
    """The NAME=VALUE assignments that prefix a shell command line."""
    assignments: dict[str, str] = {}
    for word in shlex.split(line, comments=True):
        name, sep, value = word.partition("=")
        if not sep or not name.isidentifier():
            break
        assignments[name] = value
    return assignments


def assert_scripts_test_runs_with(variable: str, skipped: str) -> None:
    """Every line of .ci/run that runs scripts/test has ``variable=1`` (exported before or
    set on the line); ``skipped`` names the tests that would otherwise skip in CI."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    exported = {
        name: value
        for line in lines
        if line.startswith("export ")
        for name, value in environment_of(line.removeprefix("export ")).items()
    }
    runs = [line for line in lines if "scripts/test" in shlex.split(line, comments=True)]
    assert runs, ".ci/run no longer runs scripts/test: put it back (see README, Tests)"
    for line in runs:
        environment = {**exported, **environment_of(line)}
        assert environment.get(variable) == "1", (
            f"{line!r} runs without {variable}=1: {skipped} would skip in CI"
        )
