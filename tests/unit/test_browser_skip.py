"""The browser tests skip without a browser, except under VISIONQ_REQUIRE_BROWSER=1 (CI),
where a missing browser fails them: CI can never pass by skipping the console's tests."""

from __future__ import annotations

import pytest

from tests.browser import conftest


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "CHROMIUM_PATHS", ("/nonexistent/chromium",))
    monkeypatch.setattr(conftest.shutil, "which", lambda name: None)


def test_missing_browser_skips(no_chromium: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(conftest.REQUIRE_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install"):
        conftest.chromium_path()


def test_missing_browser_fails_when_required(
    no_chromium: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(conftest.REQUIRE_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match="forbids skipping"):
        conftest.chromium_path()


def test_missing_playwright_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "playwright.sync_api", None)
    monkeypatch.delenv(conftest.REQUIRE_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="playwright is not installed"):
        conftest.chromium_path()
    monkeypatch.setenv(conftest.REQUIRE_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match="playwright"):
        conftest.chromium_path()
