"""The job page as a user meets it (second user trial, issue 22 review 2): a loading state
on a slow API, nothing but a message for a job the key cannot see, the classify and custom
answers, the selected image tab, and label chips that fit their text and do not pile up.

Answers are slowed (held) or rewritten with ``page.route``, as the trial did.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.browser.drive import (
    contrast,
    expect,
    go,
    hold_requests,
    open_job,
    rewrite_json,
    shot,
    sign_in,
    tid,
    wait_held,
    wait_job,
)
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import scene_png, submit

SCHEMA = {
    "type": "object",
    "properties": {"count": {"type": "integer"}, "colours": {"type": "array"}},
    "required": ["count"],
}


@pytest.fixture(scope="module")
def jobs(stack: ConsoleStack) -> dict[str, str]:
    """Finished jobs of the console tenant: detect (12 objects), classify, custom, compare."""
    with stack.client() as client:
        png, _ = scene_png(seed=2201, width=1024, height=768, count=12)
        small, _ = scene_png(seed=2202)
        other, _ = scene_png(seed=2203, width=300, height=400)
        sent = {
            "detect": submit(client, png, task="detect"),
            "classify": submit(client, small, task="classify", labels="shapes,photo"),
            "custom": submit(client, small, task="custom", prompt="Count", schema=SCHEMA),
            "compare": submit(client, [small, other], task="compare"),
        }
        ids = {task: answer.raise_for_status().json()["id"] for task, answer in sent.items()}
        for job_id in ids.values():
            assert wait_job(client, job_id)["status"] == "succeeded"
    return ids


def test_job_page_says_loading_until_the_job_and_its_image_arrive(
    page: Any, stack: ConsoleStack, jobs: dict[str, str]
) -> None:
    job_id = jobs["detect"]
    sign_in(page, stack)
    held = hold_requests(page, f"**/v1/jobs/{job_id}")
    images = hold_requests(page, f"**/v1/jobs/{job_id}/images/*")
    go(page, f"#/jobs/{job_id}")
    wait_held(page, held, "the job page never asked for its job")
    job_page = tid(page, "job-page")
    expect(job_page).to_have_attribute("aria-busy", "true")
    expect(page.get_by_text("Loading…")).to_be_visible()
    # Nothing to press and no empty sections while the job is on its way.
    expect(tid(page, "job-retry")).to_be_hidden()
    expect(tid(page, "job-cancel")).to_be_hidden()
    expect(page.get_by_role("heading", name="Cost")).to_be_hidden()
    held[0].continue_()
    expect(job_page).to_have_attribute("data-status", "succeeded")
    expect(job_page).not_to_have_attribute("aria-busy", "true")
    expect(page.get_by_text("Loading…", exact=True)).to_have_count(0)
    expect(tid(page, "job-retry")).to_be_visible()
    # The image is still on its way: no broken-image glyph, no boxes over an empty frame.
    wait_held(page, images, "the job page never asked for its image")
    expect(tid(page, "overlay")).to_have_attribute("aria-busy", "true")
    expect(tid(page, "overlay-image")).to_be_hidden()
    expect(tid(page, "overlay-svg")).to_be_hidden()
    images[0].continue_()
    expect(tid(page, "overlay")).to_have_attribute("data-ready", "true")
    expect(tid(page, "overlay-image")).to_be_visible()
    expect(tid(page, "overlay-svg")).to_be_visible()
    expect(tid(page, "overlay")).not_to_have_attribute("aria-busy", "true")


def test_a_job_the_key_cannot_see_shows_only_the_message(
    page: Any, stack: ConsoleStack, jobs: dict[str, str], console_log: Any
) -> None:
    job_id = jobs["detect"]
    console_log.expect(rf"404 \(Not Found\) \(\S*/v1/jobs/{job_id}\)")
    sign_in(page, stack, tenant="other")
    go(page, f"#/jobs/{job_id}")
    error = tid(page, "job-error")
    expect(error).to_contain_text(f"No job {job_id} for this key")
    expect(tid(page, "job-page")).not_to_have_attribute("aria-busy", "true")
    for name in ("job-retry", "job-cancel", "cost", "attempts"):
        expect(tid(page, name)).to_be_hidden()
    for heading in ("Cost", "Attempts", "Details"):
        expect(page.get_by_role("heading", name=heading)).to_be_hidden()
    back = error.get_by_role("link", name="Back to Jobs")
    back.click()
    expect(tid(page, "jobs-table")).to_be_visible()


@pytest.mark.parametrize(
    ("result", "shown"),
    [
        ({"label": "shapes", "text": "shapes"}, "shapes"),
        ({"label": "photo", "text": " Photo "}, "photo"),
        ({"label": "shapes", "text": "three shapes on grey"}, "shapes — three shapes on grey"),
    ],
    ids=["same", "same-case", "differs"],
)
def test_classify_shows_its_text_only_when_it_differs_from_the_label(
    page: Any,
    stack: ConsoleStack,
    jobs: dict[str, str],
    result: dict[str, str],
    shown: str,
) -> None:
    job_id = jobs["classify"]

    def change(job: dict[str, Any]) -> None:
        job["result"] = {**job["result"], **result}

    rewrite_json(page, f"**/v1/jobs/{job_id}", change)
    sign_in(page, stack)
    open_job(page, job_id)
    expect(tid(page, "job-result-text")).to_have_text(shown)


def test_custom_job_shows_its_schema_collapsed(
    page: Any, stack: ConsoleStack, jobs: dict[str, str]
) -> None:
    sign_in(page, stack)
    open_job(page, jobs["custom"])
    schema = tid(page, "job-schema")
    expect(schema).to_be_visible()
    assert schema.evaluate("d => d.tagName") == "DETAILS"
    expect(schema).not_to_have_attribute("open", "")
    code = schema.locator("pre")
    expect(code).to_be_hidden()
    schema.locator("summary").click()
    expect(code).to_be_visible()
    assert json.loads(code.inner_text()) == SCHEMA


def test_selected_image_tab_stands_out(
    page: Any, stack: ConsoleStack, jobs: dict[str, str]
) -> None:
    sign_in(page, stack)
    open_job(page, jobs["compare"])
    tabs = tid(page, "image-tab")
    expect(tabs).to_have_count(2)
    tabs.nth(1).click()  # the pointer stays on it: hovered and selected
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    assert contrast(tabs.nth(1)) >= 4.5
    page.mouse.move(0, 0)
    assert contrast(tabs.nth(1)) >= 4.5
    assert contrast(tabs.nth(0)) >= 4.5
    selected, other = (
        tabs.nth(i).evaluate("el => getComputedStyle(el).backgroundColor") for i in (1, 0)
    )
    assert selected != other, "the selected tab looks like the others"


# Each drawn object's label chip on screen, and the image's rectangle (CSS px).
CHIPS = """() => {
    const box = (el) => { const r = el.getBoundingClientRect();
        return [r.left, r.top, r.right, r.bottom]; };
    const overlay = document.querySelector('[data-testid="overlay"]');
    return {
        image: box(document.querySelector('[data-testid="overlay-image"]')),
        scale: Number(overlay.dataset.scale),
        chips: [...document.querySelectorAll('[data-testid="overlay-object"]')].map((g) => ({
            index: Number(g.dataset.index),
            shown: g.dataset.labelShown !== "false"
                && getComputedStyle(g.querySelector("rect.label-bg")).display !== "none",
            text: g.querySelector("text.label").textContent,
            title: (g.querySelector("title") || {}).textContent,
            fontPx: Number(g.querySelector("text.label").getAttribute("font-size"))
                * Number(overlay.dataset.scale),
            textBox: box(g.querySelector("text.label")),
            chip: box(g.querySelector("rect.label-bg")),
        })),
    };
}"""


def inside(inner: list[float], outer: list[float], slack: float = 0.5) -> bool:
    return (
        inner[0] >= outer[0] - slack
        and inner[1] >= outer[1] - slack
        and inner[2] <= outer[2] + slack
        and inner[3] <= outer[3] + slack
    )


def assert_chips_fit(page: Any, where: str) -> list[dict[str, Any]]:
    """Every shown chip holds its whole text and lies on the image; the shown chips."""
    seen = page.evaluate(CHIPS)
    shown = [c for c in seen["chips"] if c["shown"]]
    assert shown, f"{where}: no label shown"
    for chip in shown:
        text = [chip["textBox"][0], chip["chip"][1], chip["textBox"][2], chip["chip"][3]]
        assert inside(text, chip["chip"]), f"{where}: text cut by its chip: {chip}"
        assert inside(chip["chip"], seen["image"]), f"{where}: chip off the image: {chip}"
    return list(shown)


HTML_LABEL = '<b>bold</b> & "q"'
LONG_LABEL = " ".join(["a very long label"] * 6)


@pytest.mark.parametrize(
    "viewport", [{"width": 1280, "height": 800}, {"width": 390, "height": 844}]
)
def test_label_chips_fit_their_text_and_cut_long_labels(
    new_page: Any, stack: ConsoleStack, jobs: dict[str, str], viewport: dict[str, int]
) -> None:
    job_id = jobs["detect"]
    page = new_page(viewport)

    def change(job: dict[str, Any]) -> None:
        objects = job["result"]["objects"][:4]
        objects[1]["label"] = HTML_LABEL
        objects[2]["label"] = LONG_LABEL
        objects[3]["label"] = "magenta rectangle"
        objects[3]["box"] = [1024 - 60, 300, 1024, 380]  # at the right edge
        job["result"]["objects"] = objects

    rewrite_json(page, f"**/v1/jobs/{job_id}", change)
    sign_in(page, stack)
    open_job(page, job_id)
    expect(tid(page, "overlay")).to_have_attribute("data-ready", "true")
    shot(page, "job-labels")
    shown = {c["index"]: c for c in assert_chips_fit(page, str(viewport))}
    labels = ["", HTML_LABEL, LONG_LABEL, "magenta rectangle"]
    for index in (1, 2, 3):
        chip = page.evaluate(CHIPS)["chips"][index]
        assert chip["title"] == f"{labels[index]} #{index + 1}", chip
    if 1 in shown:
        assert shown[1]["text"] == f"{HTML_LABEL} #2"
    if 3 in shown:
        assert shown[3]["text"] == "magenta rectangle #4"
    long = page.evaluate(CHIPS)["chips"][2]
    assert long["text"].endswith("… #3") and long["text"].startswith("a very long"), long
    image = page.evaluate(CHIPS)["image"]
    width = long["chip"][2] - long["chip"][0]
    assert width <= min(15 * 13, image[2] - image[0]) + 1, long
    # The legend names the object in full.
    expect(page.locator("fieldset.objects")).to_contain_text(f"{LONG_LABEL} #3")


def test_many_labels_at_low_zoom_do_not_pile_up(
    new_page: Any, stack: ConsoleStack, jobs: dict[str, str]
) -> None:
    page = new_page({"width": 390, "height": 844})
    sign_in(page, stack)
    open_job(page, jobs["detect"])
    overlay = tid(page, "overlay")
    expect(overlay).to_have_attribute("data-ready", "true")
    expect(tid(page, "overlay-object")).to_have_count(12)
    scale = float(overlay.get_attribute("data-scale") or "nan")
    assert scale < 0.5, scale
    shot(page, "job-many-labels")
    shown = assert_chips_fit(page, "390 px, Fit")
    assert shown[0]["index"] == 0, "the first object's label comes first"
    for a, b in ((a, b) for i, a in enumerate(shown) for b in shown[i + 1 :]):
        apart = (
            a["chip"][2] <= b["chip"][0]
            or b["chip"][2] <= a["chip"][0]
            or a["chip"][3] <= b["chip"][1]
            or b["chip"][3] <= a["chip"][1]
        )
        assert apart, f"chips overlap: {a['text']!r} and {b['text']!r}"
    for chip in shown:
        assert 10 - 0.01 <= chip["fontPx"] < 13, chip  # smaller than at 100 %
    # Only one object shown: its chip has room.
    tid(page, "objects-none").click()
    last = page.locator('[data-testid="object-toggle"][data-index="11"]')
    last.set_checked(True)
    chips = page.evaluate(CHIPS)["chips"]
    assert [c["index"] for c in chips if c["shown"]] == [11], chips
    # Zoomed in, there is room for more labels again.
    tid(page, "objects-all").click()
    for _ in range(3):
        tid(page, "zoom-in").click()
    expect(overlay).not_to_have_attribute("data-scale", str(scale))
    zoomed = [c for c in page.evaluate(CHIPS)["chips"] if c["shown"]]
    assert len(zoomed) >= len(shown), (len(zoomed), len(shown))
