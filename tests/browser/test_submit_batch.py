"""Many files from the Submit page: dropped files sent "as a batch" become one batch with an
item per file keyed by its name, closed once all are added, and the page moves to the batch,
which runs to the end; a chosen folder lists its images by relative path, in order; a closed
batch's name is replaced before any item is sent; a batch whose items failed to send is
completed from the outcome's button, one that failed to close can be cancelled from it; jobs
that failed to send are listed and kept to send again; sixty files draw their thumbnails
only as they scroll into view."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from PIL import Image

from tests.browser.conftest import ConsoleLog
from tests.browser.drive import drop_files, expect, new_batch, sign_in, tid
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import scene_png
from visionq.emulator.shapes import encode

if TYPE_CHECKING:
    from playwright.sync_api import Page


def fill_caption_batch(
    page: Page, stack: ConsoleStack, files: list[tuple[str, bytes, str]], name: str
) -> None:
    """Sign in on Submit, drop ``files`` and fill the form: caption, as a batch named ``name``."""
    sign_in(page, stack, route="#/submit")
    drop_files(page, '[data-testid="drop-zone"]', files)
    tid(page, "submit-task").select_option("caption")
    tid(page, "submit-as-batch").set_checked(True)
    tid(page, "submit-batch-name").fill(name)


def test_dropped_files_sent_as_a_closed_batch(
    page, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    files = [(f"shot-{i}.png", scene_png(seed=100 + i)[0], "image/png") for i in range(3)]
    name = f"dropped-{uuid.uuid4().hex[:8]}"
    sign_in(page, stack, route="#/submit")
    drop_files(page, '[data-testid="drop-zone"]', files)
    expect(tid(page, "file-item")).to_have_count(3)
    names = tid(page, "file-item").evaluate_all("items => items.map(i => i.dataset.name)")
    assert sorted(names) == [f[0] for f in files]
    tid(page, "submit-task").select_option("caption")
    tid(page, "submit-as-batch").set_checked(True)
    tid(page, "submit-batch-name").fill(name)
    expect(tid(page, "estimate")).to_have_attribute("data-state", "ready")
    tid(page, "submit-send").click()

    expect(page).to_have_url(re.compile(r"#/batches/[0-9a-f-]{36}$"))
    batch_id = page.url.rsplit("/", 1)[1]
    bar = tid(tid(page, "batch-page"), "batch-progress")
    expect(bar).to_have_attribute("data-succeeded", "3", timeout=60_000)
    expect(tid(page, "batch-page")).not_to_have_attribute("data-state", "open")
    batch = api_client.get(f"/v1/batches/{batch_id}").raise_for_status().json()
    assert batch["name"] == name and batch["task"] == "caption", batch
    assert batch["state"] != "open", batch  # closed after the last item was added
    items = api_client.get(f"/v1/batches/{batch_id}/items").raise_for_status().json()
    assert sorted(item["key"] for item in items["items"]) == [f[0] for f in files], items


def test_chosen_folder_lists_its_images_by_relative_path(
    page, stack: ConsoleStack, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    (folder / "day2").mkdir(parents=True)
    png = scene_png(seed=110)[0]
    for name in ("img10.png", "img2.png", "img1.png", "day2/b.png"):
        (folder / name).write_bytes(png)
    (folder / "notes.txt").write_text("not an image", encoding="utf-8")
    sign_in(page, stack, route="#/submit")
    tid(page, "folder-input").set_input_files(folder)
    expect(tid(page, "file-item")).to_have_count(4)
    names = tid(page, "file-item").evaluate_all("items => items.map(i => i.dataset.name)")
    # Sorted by path as people count: img2 before img10.
    wanted = ["photos/day2/b.png", "photos/img1.png", "photos/img2.png", "photos/img10.png"]
    assert names == wanted, names


def test_closed_batch_name_is_replaced_before_any_item_is_sent(
    page, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    name = f"closed-{uuid.uuid4().hex[:8]}"
    closed = new_batch(api_client, name, "caption")
    api_client.post(f"/v1/batches/{closed}/close").raise_for_status()
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    fill_caption_batch(page, stack, [("one.png", scene_png(seed=130)[0], "image/png")], name)
    tid(page, "submit-send").click()
    expect(tid(page, "submit-error")).to_contain_text("press Send again")
    expect(tid(page, "submit-batch-name")).to_have_value(re.compile(r"^console-"))
    tid(page, "submit-send").click()
    expect(page).to_have_url(re.compile(r"#/batches/[0-9a-f-]{36}$"))
    assert page.url.rsplit("/", 1)[1] != closed
    assert not [url for url in sent if f"/v1/batches/{closed}/items" in url], sent


def test_batch_whose_items_failed_to_send_can_be_completed(
    page, stack: ConsoleStack, api_client: httpx.Client, console_log: ConsoleLog
) -> None:
    console_log.expect(r"status of 503")  # the injected answers, logged by Chromium
    files = [(f"part-{i}.png", scene_png(seed=140 + i)[0], "image/png") for i in range(3)]
    name = f"partial-{uuid.uuid4().hex[:8]}"
    fill_caption_batch(page, stack, files, name)
    page.route("**/v1/batches/*/items", lambda route: route.fulfill(status=503, body="{}"))
    tid(page, "submit-send").click()
    outcome = tid(page, "submit-outcome")
    expect(outcome).to_contain_text("is open with 0 of 3 items")
    link = tid(outcome, "outcome-batch")
    batch_id = (link.get_attribute("href") or "").rsplit("/", 1)[1]
    assert api_client.get(f"/v1/batches/{batch_id}").json()["state"] == "open"
    page.unroute("**/v1/batches/*/items")
    tid(outcome, "outcome-resume").click()
    expect(page).to_have_url(re.compile(f"#/batches/{batch_id}$"))
    expect(tid(page, "batch-page")).not_to_have_attribute("data-state", "open")
    batch = api_client.get(f"/v1/batches/{batch_id}").json()
    assert batch["item_count"] == 3 and batch["state"] != "open", batch


def test_jobs_that_failed_to_send_are_listed_and_kept(
    page, stack: ConsoleStack, console_log: ConsoleLog
) -> None:
    console_log.expect(r"status of 503")  # the injected answer, logged by Chromium
    files = [(f"job-{i}.png", scene_png(seed=150 + i)[0], "image/png") for i in range(3)]
    posts: list[str] = []

    def second_fails(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        posts.append(route.request.url)
        if len(posts) == 2:
            body = '{"error": {"code": "unavailable", "message": "try again"}}'
            route.fulfill(status=503, content_type="application/json", body=body)
        else:
            route.continue_()

    sign_in(page, stack, route="#/submit")
    drop_files(page, '[data-testid="drop-zone"]', files)
    tid(page, "submit-task").select_option("caption")
    page.route("**/v1/jobs", second_fails)
    tid(page, "submit-send").click()
    outcome = tid(page, "submit-outcome")
    expect(outcome).to_contain_text("2 of 3 jobs sent")
    expect(tid(outcome, "outcome-unsent").locator("li")).to_have_count(1)
    expect(tid(tid(page, "submitted"), "job-row")).to_have_count(2)
    tid(outcome, "outcome-keep-unsent").click()
    expect(tid(page, "file-item")).to_have_count(1)


def test_sixty_files_draw_thumbnails_only_in_view(
    page, stack: ConsoleStack, tmp_path: Path
) -> None:
    paths = []
    for i in range(60):
        path = tmp_path / f"tile-{i:02d}.png"
        path.write_bytes(encode(Image.new("RGB", (64, 48), (i * 4, 100, 200)), "PNG"))
        paths.append(path)
    sign_in(page, stack, route="#/submit")
    tid(page, "file-input").set_input_files(paths)
    items = tid(page, "file-item")
    expect(items).to_have_count(60)
    drawn = page.locator('[data-testid="file-list"] canvas.thumb[data-drawn="true"]')
    expect(drawn.first).to_be_attached()
    page.wait_for_timeout(300)
    first = drawn.count()
    assert 0 < first < 60, f"{first} of 60 thumbnails drawn before any scrolling"
    tid(page, "file-list").evaluate("list => { list.scrollTop = list.scrollHeight; }")
    last = page.locator('[data-testid="file-item"]:last-child canvas[data-drawn="true"]')
    expect(last).to_have_count(1)
    assert drawn.count() > first
    assert tid(page, "file-list").locator("img").count() == 0  # no object URL per file

    # Removing one row keeps the other rows (the same nodes, in order).
    third = items.nth(2).element_handle()
    items.nth(1).get_by_role("button").click()
    expect(items).to_have_count(59)
    assert items.nth(1).evaluate("(li, kept) => li === kept", third)
    # Choosing a listed file again adds nothing.
    tid(page, "file-input").set_input_files(paths[:1])
    page.wait_for_timeout(300)
    expect(items).to_have_count(59)


def test_batch_that_failed_to_close_can_be_cancelled(
    page, stack: ConsoleStack, api_client: httpx.Client, console_log: ConsoleLog
) -> None:
    console_log.expect(r"status of 503")  # the injected answer, logged by Chromium
    files = [(f"close-{i}.png", scene_png(seed=160 + i)[0], "image/png") for i in range(2)]
    fill_caption_batch(page, stack, files, f"noclose-{uuid.uuid4().hex[:8]}")
    page.route("**/v1/batches/*/close", lambda route: route.fulfill(status=503, body="{}"))
    tid(page, "submit-send").click()
    outcome = tid(page, "submit-outcome")
    expect(outcome).to_contain_text("closing it failed")
    expect(tid(outcome, "outcome-resume")).to_have_count(0)
    tid(outcome, "outcome-cancel").click()
    expect(tid(page, "batch-page")).to_have_attribute("data-state", "cancelled")
    batch_id = tid(page, "batch-page").get_attribute("data-batch-id")
    assert api_client.get(f"/v1/batches/{batch_id}").json()["state"] == "cancelled"
