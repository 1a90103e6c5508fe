"""scripts/test looks for Chromium where the browser tests do (review #24), so it neither
installs a second Chromium nor warns about one the tests would find, and checks the font
the console's overlay labels use on its own."""

from __future__ import annotations

from pathlib import Path

from tests.browser.conftest import CHROMIUM_PATHS

SCRIPT = (Path(__file__).resolve().parents[2] / "scripts" / "test").read_text()


def test_scripts_test_finds_chromium_where_the_browser_tests_do() -> None:
    for path in CHROMIUM_PATHS:
        assert f"[ -x {path} ]" in SCRIPT, path
    assert "command -v chromium" in SCRIPT


def test_scripts_test_checks_the_dejavu_font_on_its_own() -> None:
    assert "fc-list" in SCRIPT and "DejaVu" in SCRIPT
