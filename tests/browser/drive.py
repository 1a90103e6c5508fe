"""Helpers that drive the console like a user and read its pixels.

Locators use the pinned ``data-testid`` contract of the console (issue 22 plan, section 9);
pixel helpers return numpy arrays (H x W x 3 screenshots, H x W boolean masks).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from tests.browser.stack import ConsoleStack

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Route

ROOT = Path(__file__).resolve().parents[2]
# Where screenshots go (a CI artifact); two of them are copied into docs/ by hand.
SCREENSHOT_VARIABLE = "VISIONQ_SCREENSHOT_DIR"
JOB_TIMEOUT_MS = 60_000
TERMINAL = ("succeeded", "failed", "cancelled")


def expect(actual: Any) -> Any:
    """Playwright's auto-waiting ``expect``, imported when used: without playwright the
    test modules still import, and conftest's rule skips (or fails) their tests."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(actual)


def screenshot_dir() -> Path:
    return Path(os.environ.get(SCREENSHOT_VARIABLE) or ROOT / "build" / "screenshots")


def hex_rgb(color: str) -> tuple[int, int, int]:
    """``#rrggbb`` as (r, g, b)."""
    value = int(color.lstrip("#"), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def tid(page: Page | Locator, name: str) -> Locator:
    """The element(s) with ``data-testid=name``."""
    return page.locator(f'[data-testid="{name}"]')


def open_console(page: Page, stack: ConsoleStack, route: str = "") -> None:
    """Load the console (``route`` is the hash, e.g. ``#/submit``)."""
    page.goto(stack.console_url + route)


def sign_in(page: Page, stack: ConsoleStack, tenant: str = "console", route: str = "") -> None:
    """Open the console, type the tenant's key and press Enter; returns once signed in."""
    open_console(page, stack, route)
    key = tid(page, "signin-key")
    key.fill(stack.keys[tenant])
    key.press("Enter")
    expect(tid(page, "signin-form")).to_have_count(0)
    expect(tid(page, "signout")).to_be_visible()


def go(page: Page, route: str) -> None:
    """Follow an in-console route (a hash change, like clicking a link; no reload)."""
    page.evaluate("route => { location.hash = route }", route)


def wait_status(page: Page, status: str, timeout_ms: int = JOB_TIMEOUT_MS) -> None:
    """Wait until the open job page shows ``status`` (it polls the API on its own)."""
    expect(tid(page, "job-page")).to_have_attribute("data-status", status, timeout=timeout_ms)


def open_job(page: Page, job_id: str) -> None:
    """Go to the job's page and wait for it (and its overlay, if any) to be ready."""
    go(page, f"#/jobs/{job_id}")
    expect(tid(page, "job-page")).to_have_attribute("data-job-id", job_id)


def drop_files(page: Page, selector: str, files: Iterable[tuple[str, bytes, str]]) -> None:
    """Drop ``files`` (name, bytes, MIME type) on ``selector`` as a user dragging them from
    a file manager would: a DataTransfer built in the page, then dragenter, dragover, drop."""
    payload = [
        {"name": name, "data": base64.b64encode(data).decode(), "type": mime}
        for name, data, mime in files
    ]
    transfer = page.evaluate_handle(
        """files => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, {type: f.type}));
            }
            return dt;
        }""",
        payload,
    )
    target = page.locator(selector)
    for event in ("dragenter", "dragover", "drop"):
        target.dispatch_event(event, {"dataTransfer": transfer})


def shot(page: Page, name: str) -> Path:
    """Screenshot of the viewport as ``<dir>/<name>-<w>x<h>.png``."""
    size = page.viewport_size or {"width": 0, "height": 0}
    path = screenshot_dir() / f"{name}-{size['width']}x{size['height']}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")  # the page's top: header and title
    page.screenshot(path=str(path), animations="disabled", caret="hide")
    return path


def overlay_png(page: Page) -> NDArray[np.int16]:
    """The overlay element's pixels (image, boxes, masks, labels): an H x W x 3 array
    (signed, so differences need no casts)."""
    data = tid(page, "overlay").screenshot(animations="disabled", caret="hide")
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def diff_mask(a: NDArray[np.int16], b: NDArray[np.int16], threshold: int = 30) -> NDArray[np.bool_]:
    """The pixels where any channel of ``a`` and ``b`` differs by more than ``threshold``:
    what a toggled layer drew, whatever the image under it."""
    assert a.shape == b.shape, (a.shape, b.shape)
    found: NDArray[np.bool_] = (np.abs(a - b) > threshold).any(axis=2)
    return found


def overlay_origin(page: Page) -> tuple[float, float]:
    """Where the image's top-left corner is inside the overlay element's screenshot (CSS px)."""
    offset: list[float] = page.evaluate(
        """() => {
            const wrap = document.querySelector('[data-testid="overlay"]').getBoundingClientRect();
            const img = document.querySelector('[data-testid="overlay-image"]')
                .getBoundingClientRect();
            return [img.left - wrap.left, img.top - wrap.top];
        }"""
    )
    return offset[0], offset[1]


def assert_no_leaked_values(page: Page, where: str) -> None:
    """The page shows no JavaScript value as text (null, undefined, NaN, [object X])."""
    text = page.locator("body").inner_text()
    leaked = re.findall(r"\b(?:null|undefined|NaN)\b|\[object \w+\]", text)
    assert not leaked, f"{where} shows JavaScript values as text: {leaked}"


def hold_requests(page: Page, pattern: str) -> list[Route]:
    """Hold every request matching ``pattern`` unanswered until the test continues it."""
    held: list[Route] = []

    def hold(route: Route) -> None:  # a plain function: Playwright cannot wrap a bound builtin
        held.append(route)

    page.route(pattern, hold)
    return held


def wait_held(page: Page, held: list[Route], what: str) -> None:
    """Wait up to 15 s (the pages' default timeout) until a request is held (``what`` names
    the one that never came).

    Polled with page.wait_for_timeout: Playwright runs route handlers only inside its calls.
    """
    for _ in range(300):
        if held:
            return
        page.wait_for_timeout(50)
    raise AssertionError(what)


def wait_until(check: Callable[[], Any], timeout_s: float = 60, what: str = "") -> Any:
    """Poll ``check`` until it returns a truthy value (returned)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.2)


def wait_job(client: httpx.Client, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    """The job over the API once it ended."""

    def ended() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        return job if job["status"] in TERMINAL else None

    result: dict[str, Any] = wait_until(ended, timeout_s, f"job {job_id} ended")
    return result


def add_batch_items(
    client: httpx.Client, batch_id: str, images: list[bytes], start: int = 0
) -> None:
    """Add one item per image to the batch (keys ``item-<n>`` from ``start``), multipart."""
    items = [{"key": f"item-{start + i}", "images": [{"part": i}]} for i in range(len(images))]
    client.post(
        f"/v1/batches/{batch_id}/items",
        data={"items": json.dumps({"items": items})},
        files=[("image", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)],
    ).raise_for_status()


def new_batch(client: httpx.Client, name: str, task: str, **defaults: Any) -> str:
    """Create a batch of ``task`` items (``defaults`` as model=, options=); its id."""
    body = {"name": name, "task": task, **defaults}
    return str(client.post("/v1/batches", json=body).raise_for_status().json()["id"])


def two_models(client: httpx.Client) -> tuple[str, str]:
    """Two usable models that run captions and detection on the flex tier."""
    models = client.get("/v1/models").raise_for_status().json()["models"]
    fit = [
        m["id"]
        for m in models
        if m["usable"] and {"caption", "detect"} <= set(m["tasks"]) and "flex" in m["tiers"]
    ]
    assert len(fit) >= 2, models
    return fit[0], fit[1]


def rewrite_json(page: Page, pattern: str, change: Callable[[Any], None]) -> None:
    """Answer every request matching ``pattern`` with the real answer's JSON after
    ``change(data)`` edited it in place (a result the emulator would not give)."""

    def handle(route: Route) -> None:
        response = route.fetch()
        data = response.json()
        change(data)
        route.fulfill(response=response, json=data)

    page.route(pattern, handle)


def contrast(locator: Locator) -> float:
    """The WCAG contrast ratio of the element's text colour on its own background colour."""
    ratio: float = locator.evaluate(
        """el => {
            const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
            const lum = (c) => { const [r, g, b] = rgb(c).map((v) => { v /= 255;
                return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
            const style = getComputedStyle(el);
            const [a, b] = [lum(style.color), lum(style.backgroundColor)].sort((x, y) => y - x);
            return (a + 0.05) / (b + 0.05);
        }"""
    )
    return ratio
