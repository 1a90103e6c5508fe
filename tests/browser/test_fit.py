"""Fit shows the whole image, whatever its shape, on a desktop and on a phone: a wide
panorama, a tall portrait and a tiny icon (enlarged) all fit the viewer without scrolling."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.drive import expect, open_job, sign_in, tid, wait_job
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import submit
from visionq.emulator.shapes import encode

SIZES = [(4000, 1000), (800, 1200), (16, 16)]


@pytest.fixture(scope="module")
def jobs(stack: ConsoleStack) -> dict[tuple[int, int], str]:
    """A finished caption job per image size."""
    found = {}
    with stack.client() as client:
        for width, height in SIZES:
            png = encode(Image.new("RGB", (width, height), (40, 120, 200)), "PNG")
            job_id = submit(client, png, task="caption").raise_for_status().json()["id"]
            found[(width, height)] = job_id
        for job_id in found.values():
            wait_job(client, job_id)
    return found


VIEWER_FITS = """() => { const v = document.querySelector(".overlay-viewport");
    return [v.scrollWidth, v.clientWidth, v.scrollHeight, v.clientHeight]; }"""


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_fit_shows_the_whole_image(
    new_page, stack: ConsoleStack, jobs: dict[tuple[int, int], str], viewport: dict[str, int]
) -> None:
    page = new_page(viewport)
    sign_in(page, stack)
    for (width, height), job_id in jobs.items():
        open_job(page, job_id)
        overlay = tid(page, "overlay")
        expect(overlay).to_have_attribute("data-ready", "true")
        expect(overlay).to_have_attribute("data-image-width", str(width))
        sw, cw, sh, ch = page.evaluate(VIEWER_FITS)
        assert sw <= cw and sh <= ch, f"{width}x{height} at {viewport}: {sw}x{sh} in {cw}x{ch}"
        fit = float(overlay.get_attribute("data-scale") or "nan")
        if (width, height) == (16, 16):
            assert fit >= 2, f"a 16 px image is shown at {fit:.2f}x: enlarge it"
        if (width, height) == (4000, 1000) and viewport == PHONE:
            page.locator("h1").first.focus()
            page.keyboard.press("-")  # below Fit would only shrink the whole image further
            assert float(overlay.get_attribute("data-scale") or "nan") >= fit - 1e-9
            page.keyboard.press("+")
            page.keyboard.press("0")
            expect(overlay).to_have_attribute("data-scale", str(fit))
