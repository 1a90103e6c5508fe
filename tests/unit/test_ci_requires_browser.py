"""CI must run the browser tests, never skip them: .ci/run sets VISIONQ_REQUIRE_BROWSER=1 on
the command that runs scripts/test (without it a missing Chromium skips every browser test
and CI stays green)."""

from __future__ import annotations

from tests.browser.conftest import REQUIRE_VARIABLE
from tests.ci_run import assert_scripts_test_runs_with, environment_of


def test_ci_runs_scripts_test_with_the_browser_required() -> None:
    assert_scripts_test_runs_with(REQUIRE_VARIABLE, "browser tests")


def test_environment_of_reads_only_the_leading_assignments() -> None:
    assert environment_of("A=1 B=x bash scripts/test C=2") == {"A": "1", "B": "x"}
    assert environment_of("bash scripts/test") == {}
