"""Browser tests: Debian's Chromium, driven by Playwright, against one live stack.

Skip rule: without the playwright package or a Chromium binary every test here skips, unless
VISIONQ_REQUIRE_BROWSER=1 (CI, .ci/run), which turns the skip into a failure. One stack and
one browser serve all of them (tests run one after another); each test gets a new
browser context (fresh sessionStorage: signed out) and a page whose console errors,
warnings and uncaught exceptions fail the test unless it declared them expected.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.browser.stack import ConsoleStack, console_stack

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright

HERE = Path(__file__).resolve().parent
# Set by .ci/run: a missing browser fails these tests instead of skipping them.
REQUIRE_VARIABLE = "VISIONQ_REQUIRE_BROWSER"
# Debian's launcher script first (it reads /etc/chromium.d), then the binary it runs.
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")
# Headless, no GPU, and nothing that calls out to Google's servers on its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{reason}; {REQUIRE_VARIABLE}=1 forbids skipping")
    pytest.skip(reason)


def chromium_path() -> str:
    """Path of Debian's Chromium; skips (or fails, under VISIONQ_REQUIRE_BROWSER=1) when
    playwright is not installed or no Chromium is found."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable('playwright is not installed: pip install -e ".[dev]"')
    for found in (*CHROMIUM_PATHS, shutil.which("chromium")):
        if found and Path(found).is_file() and os.access(found, os.X_OK):
            return found
    _unavailable(
        "chromium not found: install Debian's chromium package (apt-get install "
        "--no-install-recommends chromium fonts-dejavu-core; scripts/test does it as root)"
    )
    raise AssertionError("unreachable")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is a browser test on a live stack."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def chromium() -> str:
    return chromium_path()


# Package scope: one stack and one browser for every test here, stopped when the last of
# them ends, so the rest of a full run does not carry their processes along.
@pytest.fixture(scope="package")
def stack(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    """The browser tests' stack (started after the browser check, so a skip costs nothing)."""
    built = console_stack(tmp_path_factory.mktemp("console-stack"))
    yield built
    built.stop()


@pytest.fixture(scope="package")
def playwright_session(chromium: str) -> Iterator[Playwright]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright_session: Playwright, chromium: str) -> Iterator[Browser]:
    launched = playwright_session.chromium.launch(
        executable_path=chromium, headless=True, args=CHROMIUM_ARGS
    )
    print(f"\nbrowser: chromium {launched.version} at {chromium}")
    yield launched
    launched.close()


@dataclass
class ConsoleLog:
    """What the page printed to its console as errors or warnings, and its uncaught
    exceptions; ``expect(pattern)`` declares a message the test provokes on purpose."""

    messages: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect(self, pattern: str) -> None:
        self.expected.append(re.compile(pattern))

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            where = message.location.get("url", "")
            self.messages.append(f"console.{message.type}: {message.text} ({where})")

    def on_pageerror(self, error: Error) -> None:
        self.messages.append(f"pageerror: {error.message}\n{error.stack or ''}")

    def unexpected(self) -> list[str]:
        return [m for m in self.messages if not any(p.search(m) for p in self.expected)]


@pytest.fixture
def console_log() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def new_page(
    browser: Browser, console_log: ConsoleLog, stack: ConsoleStack
) -> Iterator[Callable[..., Page]]:
    """Makes pages in new contexts (each its own sessionStorage), 1280x800 unless a
    ``viewport`` is given; every page's console is collected into ``console_log``, whose
    unexpected messages fail the test at teardown, and every request its context makes is
    recorded: one to another origin than the stack's (blob: and data: aside) or with an API
    key in its URL fails the test at teardown too (README: no other host, key never in a URL).
    """
    contexts: list[Any] = []
    requested: list[str] = []

    def make(viewport: dict[str, int] | None = None) -> Page:
        context = browser.new_context(
            viewport=viewport or DESKTOP,  # type: ignore[arg-type]
            device_scale_factor=1,
            reduced_motion="reduce",
            accept_downloads=True,
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        context.on("request", lambda request: requested.append(request.url))
        page = context.new_page()
        page.on("console", console_log.on_console)
        page.on("pageerror", console_log.on_pageerror)
        return page

    yield make
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()
    failures = []
    unexpected = console_log.unexpected()
    if unexpected:
        failures.append("the page logged errors or warnings:\n" + "\n".join(unexpected))
    bad = stray_requests(requested, stack.api_url, list(stack.keys.values()))
    if bad:
        failures.append("the page made requests it must not make:\n" + "\n".join(bad))
    if failures:
        pytest.fail("\n".join(failures))


def stray_requests(urls: list[str], own_url: str, keys: list[str]) -> list[str]:
    """The requests that leave the stack's origin (blob: and data: are the page's own) or
    carry an API key in the URL, each with the reason."""
    own = urlsplit(own_url)
    bad = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("blob", "data") and (parts.scheme, parts.netloc) != (
            own.scheme,
            own.netloc,
        ):
            bad.append(f"another origin than {own_url}: {url[:200]}")
        if any(key in url or key in unquote(url) for key in keys):
            bad.append(f"an API key in the URL: {url[:200]}")
    return bad


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A fresh page at 1280x800 (signed out)."""
    return new_page()


@pytest.fixture
def api_client(stack: ConsoleStack) -> Iterator[httpx.Client]:
    """The console tenant's HTTP client (the same key the page signs in with)."""
    with stack.client() as client:
        yield client


@pytest.fixture
def emulator_faults(stack: ConsoleStack) -> Callable[..., contextlib.AbstractContextManager[None]]:
    """``with emulator_faults(always_fail=503): ...`` sets the private emulator's faults and
    always restores its start-up settings after (also when the test fails inside)."""

    @contextlib.contextmanager
    def faults(**settings: Any) -> Iterator[None]:
        stack.set_faults(**settings)
        try:
            yield
        finally:
            stack.reset_faults()

    return faults
