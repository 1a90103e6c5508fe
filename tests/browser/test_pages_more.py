"""The second user trial's page fixes (issue 22 review 2, and review 1 #14, #18): the Submit
page names each sent job's file, the estimate reads cleanly when extrapolated, Cancel batch
asks first, exports carry the batch id, the spending chart opens on the newest days at
phone width, the jobs list's time filters take minutes and can be skipped, its Model
filter groups retired models apart, and phone cards are compact."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from tests.browser.conftest import PHONE
from tests.browser.drive import (
    add_batch_items,
    drop_files,
    expect,
    new_batch,
    sign_in,
    tid,
)
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import scene_png, submit


def drop_shots(page: Any, count: int) -> list[str]:
    """Drop ``count`` small scenes named shot1.png ... on the Submit page; their names."""
    png, _ = scene_png(71, width=160, height=120, count=1)
    names = [f"shot{i}.png" for i in range(1, count + 1)]
    drop_files(page, '[data-testid="drop-zone"]', [(n, png, "image/png") for n in names])
    return names


def test_extrapolated_estimate_reads_cleanly(page: Any, stack: ConsoleStack) -> None:
    """21 files, one more than the estimate samples: it says it extrapolated, no "≈,"."""
    sign_in(page, stack, route="#/submit")
    drop_shots(page, 21)
    estimate = tid(page, "estimate")
    expect(estimate).to_have_attribute("data-state", "ready", timeout=30_000)
    text = estimate.inner_text()
    assert "≈," not in text, text
    assert "(from 20 of 21 jobs)" in text, text
    assert tid(estimate, "estimate-tokens").inner_text().startswith("≈ "), text


def test_submitted_jobs_show_their_files_in_file_order(page: Any, stack: ConsoleStack) -> None:
    """Send lists each job with the file it was made from, in the files' order, and keeps
    the name when the live poll redraws the row."""
    sign_in(page, stack, route="#/submit")
    names = drop_shots(page, 6)
    expect(tid(page, "submit-send")).to_be_enabled(timeout=30_000)
    tid(page, "submit-send").click()
    rows = tid(tid(page, "submitted"), "job-row")
    expect(rows).to_have_count(6, timeout=30_000)
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.file)") == names
    expect(tid(page, "submitted").locator("thead th").first).to_have_text("File")
    expect(rows.first).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(rows.first).to_have_attribute("data-file", "shot1.png")
    expect(rows.first.locator("td").first).to_contain_text("shot1.png")


def open_batch(page: Any, stack: ConsoleStack, client: httpx.Client, name: str) -> str:
    """An open batch of one caption item, shown on its page; its id."""
    png, _ = scene_png(72, width=160, height=120, count=1)
    batch_id = new_batch(client, name, "caption")
    add_batch_items(client, batch_id, [png])  # left open: Cancel stays possible
    sign_in(page, stack, route=f"#/batches/{batch_id}")
    expect(tid(page, "batch-page")).to_have_attribute("data-state", "open")
    return batch_id


def test_batch_exports_carry_the_batch_id(
    page: Any, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    batch_id = open_batch(page, stack, api_client, "same <b>name</b>")
    expect(tid(page, "batch-export-jsonl")).to_be_enabled()
    for kind in ("jsonl", "csv"):
        with page.expect_download() as download:
            tid(page, f"batch-export-{kind}").click()
        assert download.value.suggested_filename == f"same_b_name_b_-{batch_id[:8]}.{kind}"


def test_cancel_batch_asks_first(page: Any, stack: ConsoleStack, api_client: httpx.Client) -> None:
    batch_id = open_batch(page, stack, api_client, "to cancel")
    cancel = tid(page, "batch-cancel")
    expect(cancel).to_be_enabled()
    cancel.click()
    question = tid(page, "batch-cancel-question")
    expect(question).to_be_visible()
    expect(question).to_have_text(re.compile(r"^Really cancel (\d+ queued items?|this batch)\?"))
    expect(tid(page, "batch-cancel-confirm")).to_be_focused()
    # Nothing cancelled by the first press; Escape takes the question back.
    assert api_client.get(f"/v1/batches/{batch_id}").json()["state"] == "open"
    page.keyboard.press("Escape")
    expect(question).to_be_hidden()
    expect(cancel).to_be_focused()
    assert api_client.get(f"/v1/batches/{batch_id}").json()["state"] == "open"

    # Keyboard only: Enter on Cancel batch, then Enter on the focused "Yes, cancel".
    page.keyboard.press("Enter")
    expect(tid(page, "batch-cancel-confirm")).to_be_focused()
    page.keyboard.press("Enter")
    expect(tid(page, "batch-page")).to_have_attribute("data-state", "cancelled")
    assert api_client.get(f"/v1/batches/{batch_id}").json()["state"] == "cancelled"


def test_spending_chart_opens_on_the_newest_days_on_a_phone(
    new_page: Callable[..., Any], stack: ConsoleStack
) -> None:
    page = new_page(PHONE)
    sign_in(page, stack, route="#/spending")
    expect(tid(page, "chart-cost")).to_be_visible()
    left, client, width = page.evaluate(
        """() => {
            const s = document.querySelector('[data-testid="chart-cost"] svg').parentElement;
            return [s.scrollLeft, s.clientWidth, s.scrollWidth];
        }"""
    )
    assert width > client, (left, client, width)  # it does scroll at 390 px
    assert left > 0 and left + client >= width - 2, (left, client, width)
    expect(tid(page, "chart-cost").locator(".chart-legend")).to_be_in_viewport()


def _jobs_list_with_a_job(page: Any, stack: ConsoleStack, api_client: httpx.Client) -> None:
    """Signed in on the jobs list, showing at least one job (a caption sent just now)."""
    png, _ = scene_png(73, width=160, height=120, count=1)
    submit(api_client, png, task="caption").raise_for_status()
    sign_in(page, stack, route="#/jobs")
    expect(tid(page, "job-row").first).to_be_visible()


def test_time_filters_take_minutes_only(
    page: Any, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    _jobs_list_with_a_job(page, stack, api_client)
    for name in ("filter-from", "filter-to"):
        expect(tid(page, name)).to_have_attribute("step", "60")
    # A minutes-only value is a query the API takes (no error, the list answers).
    tid(page, "filter-from").fill("2000-01-01T00:00")
    expect(page).to_have_url(f"{stack.console_url}#/jobs?created_after=2000-01-01T00%3A00")
    expect(tid(page, "job-row").first).to_be_visible()


def test_time_filters_come_last_and_can_be_skipped(
    page: Any, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    _jobs_list_with_a_job(page, stack, api_client)
    order = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=job-filters] [data-testid]')]
            .map(e => e.dataset.testid)"""
    )
    assert order[-2:] == ["filter-from", "filter-to"], order
    # From the last text filter, two Tabs and Enter reach the first job (not ~16 Tabs
    # through the date and time segments).
    tid(page, "filter-batch").focus()
    page.keyboard.press("Tab")
    expect(tid(page, "filter-clear")).to_be_focused()
    page.keyboard.press("Tab")
    expect(tid(page, "skip-results")).to_be_focused()
    expect(tid(page, "skip-results")).to_be_visible()
    page.keyboard.press("Enter")
    expect(tid(page, "job-row").first.locator("a").first).to_be_focused()


def test_model_filter_puts_retired_models_apart(
    page: Any, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    models = api_client.get("/v1/models").raise_for_status().json()["models"]
    ids = [m["id"] for m in models if "*" not in m["id"]]
    usable = [m["id"] for m in models if m["usable"] and "*" not in m["id"]]
    retired = [i for i in ids if i not in usable]
    assert retired, "the catalogue has no retired model to show apart"
    sign_in(page, stack, route="#/jobs")
    select = tid(page, "filter-model")
    group = select.locator('optgroup[label="Retired (for old jobs)"]')
    expect(group).to_have_count(1)
    top = select.locator(":scope > option").evaluate_all("os => os.map(o => o.value)")
    assert top == ["", *usable], top
    assert group.locator("option").evaluate_all("os => os.map(o => o.value)") == retired


def test_job_cards_are_compact_on_a_phone(
    new_page: Callable[..., Any], stack: ConsoleStack, api_client: httpx.Client
) -> None:
    png, _ = scene_png(74, width=160, height=120, count=1)
    for _ in range(3):
        submit(api_client, png, task="caption").raise_for_status()
    page = new_page(PHONE)
    sign_in(page, stack, route="#/jobs")
    rows = tid(page, "job-row")
    expect(rows.nth(2)).to_be_visible()
    heights = rows.evaluate_all("rs => rs.slice(0, 3).map(r => r.getBoundingClientRect().height)")
    # One line per field was ~240 px a card (review 1 #18); compact is under half of it.
    assert max(heights) <= 120, heights
    row = rows.first
    job = api_client.get(f"/v1/jobs/{row.get_attribute('data-job-id')}").json()
    for column, text in (
        ("job", job["id"][:8]),
        ("task", job["task"]),
        ("model", job["model"]),
    ):
        cell = row.locator(f'td[data-col="{column}"]')
        expect(cell).to_be_visible()
        expect(cell).to_contain_text(text)
    for column in ("status", "created", "cost"):
        expect(row.locator(f'td[data-col="{column}"]')).to_be_visible()
