"""CI must run the multi-host and object-store tests, never skip them: .ci/run sets
VISIONQ_REQUIRE_NETNS=1 and VISIONQ_REQUIRE_OBJECTSTORE=1 on the command that runs
scripts/test (without them a machine lacking `ip netns` or the moto/fake-gcs wheels skips
those tests and CI stays green)."""

from __future__ import annotations

import shlex

import pytest

from tests.multihost.conftest import REQUIRE_VARIABLE as REQUIRE_NETNS
from tests.objectstore.conftest import REQUIRE_OBJECTSTORE
from tests.unit.test_ci_requires_browser import ROOT, environment_of


@pytest.mark.parametrize("variable", [REQUIRE_NETNS, REQUIRE_OBJECTSTORE])
def test_ci_runs_scripts_test_with_the_variable_required(variable: str) -> None:
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
            f"{line!r} runs without {variable}=1: those tests would skip in CI"
        )
