"""A detect job submitted by dropping a file on the Submit page, and its boxes drawn where
the result says, checked in the browser's own pixels.

Each box is shown alone and hidden again; the difference of the two screenshots is what the
box drew, whatever the image under it. That difference must lie on the rectangle
``box * scale`` (not shifted, not scaled), cover all four edges, leave the inside empty
(stroke only) and have the object's colour.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from tests.browser.drive import (
    assert_no_leaked_values,
    diff_mask,
    drop_files,
    expect,
    go,
    hex_rgb,
    open_job,
    overlay_origin,
    overlay_png,
    shot,
    sign_in,
    tid,
    wait_job,
    wait_status,
)
from tests.browser.pixels import assert_box_drawn_at
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import assert_boxes_match
from visionq.emulator.shapes import encode, random_scene


def test_dropped_scene_runs_as_detect_and_boxes_sit_on_the_shapes(
    page, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    # Wider than the job page's image column, so Fit scales it down (s < 1).
    image, shapes = random_scene(seed=22, width=1200, height=900, count=3, min_side=120)
    png = encode(image, "PNG")
    sign_in(page, stack, route="#/submit")
    drop_files(page, '[data-testid="drop-zone"]', [("scene.png", png, "image/png")])
    expect(tid(page, "file-item")).to_have_count(1)
    tid(page, "submit-task").select_option("detect")
    # The model choices: the server's default, then every usable model that detects.
    models = api_client.get("/v1/models").raise_for_status().json()["models"]
    detecting = [m["id"] for m in models if m["usable"] and "detect" in m["tasks"]]
    options = tid(page, "submit-model").locator("option")
    expect(options).to_have_count(len(detecting) + 1)
    assert options.evaluate_all("os => os.map(o => o.value)") == ["", *detecting]
    assert detecting[0] in options.nth(1).inner_text()
    chosen = detecting[-1]
    tid(page, "submit-model").select_option(chosen)
    tid(page, "submit-prompt").fill("shapes")
    expect(tid(page, "estimate")).to_have_attribute("data-state", "ready")
    truth = (
        api_client.post(
            "/v1/estimate",
            data={"task": "detect", "prompt": "shapes", "model": chosen},
            files=[("image", ("scene.png", png, "image/png"))],
        )
        .raise_for_status()
        .json()
    )
    estimate = tid(tid(page, "estimate"), "estimate-tokens")
    expect(estimate).to_have_attribute("data-tokens", str(truth["input_tokens"]))
    shot(page, "submit")

    tid(page, "submit-send").click()
    row = tid(tid(page, "submitted"), "job-row")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "succeeded", timeout=60_000)
    assert_no_leaked_values(page, "the Submit page after Send")
    job_id = row.get_attribute("data-job-id")
    assert job_id
    job = wait_job(api_client, job_id)
    assert job["task"] == "detect" and job["status"] == "succeeded", job
    assert job["model"] == chosen and row.get_attribute("data-model") == chosen, job["model"]
    objects = job["result"]["objects"]
    assert_boxes_match(objects, shapes)

    open_job(page, job_id)
    overlay = tid(page, "overlay")
    expect(overlay).to_have_attribute("data-ready", "true")
    assert overlay.get_attribute("data-image-width") == "1200"
    assert overlay.get_attribute("data-image-height") == "900"
    tid(page, "layer-labels").set_checked(False)
    scale = float(overlay.get_attribute("data-scale") or "nan")
    shown_width = tid(page, "overlay-image").evaluate("img => img.clientWidth")
    assert 0.2 < scale < 1, f"Fit should scale the 1200 px image down, got {scale}"
    assert abs(shown_width - 1200 * scale) <= 1, (shown_width, scale)

    drawn_objects = tid(page, "overlay-object")
    expect(drawn_objects).to_have_count(len(objects))
    tid(page, "objects-none").click()
    dx, dy = overlay_origin(page)
    for index, obj in enumerate(objects):
        node = drawn_objects.nth(index)
        assert node.get_attribute("data-box") == ",".join(map(str, obj["box"]))
        toggle = page.locator(f'[data-testid="object-toggle"][data-index="{index}"]')
        toggle.set_checked(True)
        expect(node).to_have_attribute("data-visible", "true")
        shown = overlay_png(page)
        toggle.set_checked(False)
        expect(node).to_have_attribute("data-visible", "false")
        hidden = overlay_png(page)
        drawn = diff_mask(shown, hidden)
        x0, y0, x1, y1 = obj["box"]
        rect = (dx + x0 * scale, dy + y0 * scale, dx + x1 * scale, dy + y1 * scale)
        assert_box_drawn_at(drawn, rect, f"object {index} ({obj['label']})")
        colour = np.median(shown[drawn], axis=0)
        expected = hex_rgb(node.get_attribute("data-color") or "")
        assert np.all(np.abs(colour - expected) <= 40), (obj["label"], colour, expected)

    # Zoom: two steps of + double the scale; each box follows the image exactly.
    tid(page, "objects-all").click()
    tid(page, "zoom-fit").focus()
    page.keyboard.press("+")
    page.keyboard.press("+")
    expect(overlay).not_to_have_attribute("data-zoom", str(scale))
    zoom = float(overlay.get_attribute("data-zoom") or "nan")
    assert abs(zoom - 2 * scale) < 1e-6, (scale, zoom)
    boxes = page.evaluate(
        """() => {
            const img = document.querySelector('[data-testid="overlay-image"]')
                .getBoundingClientRect();
            return [...document.querySelectorAll('[data-testid="overlay-object"] rect.box')]
                .map(r => { const b = r.getBoundingClientRect();
                            return [b.left - img.left, b.top - img.top,
                                    b.right - img.left, b.bottom - img.top]; });
        }"""
    )
    for obj, seen in zip(objects, boxes, strict=True):
        wanted = [v * zoom for v in obj["box"]]
        assert all(abs(a - b) <= 1 for a, b in zip(seen, wanted, strict=True)), (seen, wanted)

    tid(page, "zoom-fit").click()
    tid(page, "layer-labels").set_checked(True)
    shot(page, "job-detect")
    page.set_viewport_size({"width": 390, "height": 844})
    expect(overlay).to_have_attribute("data-ready", "true")
    shot(page, "job-detect")
    go(page, "#/jobs")


def test_heic_input_is_shown_with_its_boxes(
    page, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    # Browsers cannot decode HEIC: the API serves it as PNG, so the page shows the image.
    image, shapes = random_scene(seed=23, width=800, height=600, count=2, min_side=100)
    heic = encode(image, "HEIF")
    job_id = (
        api_client.post(
            "/v1/jobs",
            data={"task": "detect"},
            files=[("image", ("scene.heic", heic, "image/heic"))],
        )
        .raise_for_status()
        .json()["id"]
    )
    job = wait_job(api_client, job_id)
    assert job["status"] == "succeeded", job
    assert_boxes_match(job["result"]["objects"], shapes, tolerance=3)
    sign_in(page, stack)
    open_job(page, job_id)
    expect(tid(page, "overlay")).to_have_attribute("data-ready", "true")
    size = tid(page, "overlay-image").evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [800, 600], size
    expect(tid(page, "overlay-object")).to_have_count(2)


def submit_compare(client: httpx.Client, first: bytes, second: bytes) -> str:
    """POST a compare job of two PNGs (a.png, b.png); its id."""
    answer = client.post(
        "/v1/jobs",
        data={"task": "compare"},
        files=[
            ("image", ("a.png", first, "image/png")),
            ("image", ("b.png", second, "image/png")),
        ],
    )
    job_id: str = answer.raise_for_status().json()["id"]
    return job_id


def test_multi_image_job_shows_each_image_in_its_tab(
    page, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    first = encode(random_scene(seed=24, width=640, height=480, count=1)[0], "PNG")
    second = encode(random_scene(seed=25, width=300, height=500, count=1)[0], "PNG")
    job_id = submit_compare(api_client, first, second)
    assert wait_job(api_client, job_id)["status"] == "succeeded"
    sign_in(page, stack)
    open_job(page, job_id)
    tabs = tid(page, "image-tab")
    expect(tabs).to_have_count(2)
    overlay = tid(page, "overlay")
    expect(overlay).to_have_attribute("data-ready", "true")
    expect(overlay).to_have_attribute("data-image-width", "640")
    expect(tid(page, "overlay-image")).to_have_attribute("alt", "Input image 1")
    tabs.nth(1).click()
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    expect(overlay).to_have_attribute("data-image-width", "300")
    expect(overlay).to_have_attribute("data-ready", "true")
    expect(tid(page, "overlay-image")).to_have_attribute("alt", "Input image 2")
    size = tid(page, "overlay-image").evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [300, 500], size


def test_tabs_show_the_finished_job_after_a_live_update(
    page, stack: ConsoleStack, api_client: httpx.Client, emulator_faults: Any
) -> None:
    # Opened while running, the page must show the finished job when the tabs switch back,
    # not the running job it first rendered.
    first = encode(random_scene(seed=26, width=640, height=480, count=2)[0], "PNG")
    second = encode(random_scene(seed=27, width=320, height=240, count=1)[0], "PNG")
    sign_in(page, stack)
    with emulator_faults(hang_rate=1, hang_s=4):
        job_id = submit_compare(api_client, first, second)
        open_job(page, job_id)
        expect(tid(page, "image-tab")).to_have_count(2)
        wait_status(page, "succeeded")
    job = wait_job(api_client, job_id)
    assert job["status"] == "succeeded", job
    tabs = tid(page, "image-tab")
    tabs.nth(1).click()
    overlay = tid(page, "overlay")
    expect(overlay).to_have_attribute("data-image-width", "320")
    expect(overlay).to_have_attribute("data-ready", "true")
    tabs.nth(0).click()
    expect(overlay).to_have_attribute("data-image-width", "640")
    expect(overlay).to_have_attribute("data-ready", "true")
    expect(tid(page, "job-result-text")).to_be_visible()
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")
