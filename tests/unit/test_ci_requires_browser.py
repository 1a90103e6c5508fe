"""CI must run the browser tests, never skip them: .ci/run sets VISIONQ_REQUIRE_BROWSER=1 on
the command that runs scripts/test (without it a missing Chromium skips every browser test
and CI stays green)."""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.browser.conftest import REQUIRE_VARIABLE

ROOT = Path(__file__).resolve().parents[2]


def environment_of(line: str) -> dict[str, str]:
    """The NAME=VALUE assignments that prefix a shell command line."""
    assignments: dict[str, str] = {}
    for word in shlex.split(line, comments=True):
        name, sep, value = word.partition("=")
        if not sep or not name.isidentifier():
            break
        assignments[name] = value
    return assignments


def test_ci_runs_scripts_test_with_the_browser_required() -> None:
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
        assert environment.get(REQUIRE_VARIABLE) == "1", (
            f"{line!r} runs without {REQUIRE_VARIABLE}=1: browser tests would skip in CI"
        )


def test_environment_of_reads_only_the_leading_assignments() -> None:
    assert environment_of("A=1 B=x bash scripts/test C=2") == {"A": "1", "B": "x"}
    assert environment_of("bash scripts/test") == {}
