"""A batch's page: progress counts and cost as the API reports them, Re-run failed bringing
it to all succeeded without a reload, the CSV export downloaded, and its row in the list."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from tests.browser.drive import (
    add_batch_items,
    assert_no_leaked_values,
    expect,
    go,
    new_batch,
    shot,
    sign_in,
    tid,
    wait_until,
)
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import scene_png

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route


def progress(client: httpx.Client, batch_id: str) -> dict[str, Any]:
    batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").raise_for_status().json()
    return batch


def settled(client: httpx.Client, batch_id: str, done: int) -> dict[str, Any] | None:
    batch = progress(client, batch_id)
    return batch if batch["progress"]["done"] == done else None


def record_json(page: Page, pattern: str) -> list[dict[str, Any]]:
    """Every JSON answer the page gets for ``pattern``, in order (passed on unchanged)."""
    answers: list[dict[str, Any]] = []

    def record(route: Route) -> None:
        response = route.fetch()
        if response.ok:
            answers.append(response.json())
        route.fulfill(response=response)

    page.route(pattern, record)
    return answers


def duration(seconds: float) -> str:
    """Seconds as the page writes them under an hour ("0.4 s", "12 s", "3 min 5 s")."""
    if round(seconds * 10) / 10 < 10:
        return f"{round(seconds * 10) / 10:g} s"
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60} s"


def eta_text(batch: dict[str, Any]) -> str:
    """The batch page's "Estimated time left" for a batch as GET /v1/batches/{id} gave it."""
    p = batch["progress"]
    if batch["state"] != "open" and p["done"] >= p["items"]:
        return "Finished"
    if batch["state"] == "open" and p["items"] == 0:
        return "Waiting for items"
    if batch["state"] == "open" and p["done"] >= p["items"] and not p["eta_not_added"]:
        return "All added items done; waiting for more or for the close"
    if p["eta_s"] is None:
        return "Not known yet"
    at = datetime.fromisoformat(p["eta_at"].replace("Z", "+00:00"))
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    basis = " (from the rate limits)" if p["eta_basis"] == "quota" else ""
    return f"About {duration(p['eta_s'])}, at {at:%Y-%m-%d %H:%M:%S} UTC{basis}"


def test_batch_progress_rerun_and_export(
    page, stack: ConsoleStack, api_client: httpx.Client, emulator_faults: Any
) -> None:
    images = [scene_png(seed=70 + i)[0] for i in range(5)]
    batch_id = new_batch(api_client, f"browser-{uuid.uuid4().hex[:8]}", "detect")
    with emulator_faults(always_fail=400):  # not retried: the two items fail at once
        add_batch_items(api_client, batch_id, images[:2])
        wait_until(lambda: settled(api_client, batch_id, 2), 60, "two items failed")
    add_batch_items(api_client, batch_id, images[2:], start=2)
    batch = wait_until(lambda: settled(api_client, batch_id, 5), 60, "five items ended")
    counts = batch["progress"]["counts"]
    assert (counts["succeeded"], counts["failed"]) == (3, 2), counts

    sign_in(page, stack)
    served = record_json(page, f"**/v1/batches/{batch_id}")
    go(page, f"#/batches/{batch_id}")
    bar = tid(tid(page, "batch-page"), "batch-progress")
    expect(bar).to_have_attribute("role", "progressbar")
    expect(bar).to_have_attribute("aria-valuemin", "0")
    expect(bar).to_have_attribute("aria-valuemax", "5")
    expect(bar).to_have_attribute("aria-valuenow", "5")
    expect(bar).to_have_attribute("data-succeeded", "3")
    expect(bar).to_have_attribute("data-failed", "2")
    expect(tid(page, "batch-cost")).to_have_attribute("data-usd", batch["progress"]["cost_usd"])
    expect(tid(page, "batch-jobs")).to_have_attribute("href", f"#/jobs?batch={batch_id}")
    # The ETA as the API gave it in the answer the page shows (its fields move on each poll).
    wait_until(
        lambda: served and tid(page, "batch-eta").inner_text() == eta_text(served[-1]),
        15,
        "the batch ETA = the API's progress eta fields",
    )
    shot(page, "batch")

    tid(page, "batch-rerun").click()
    expect(bar).to_have_attribute("data-succeeded", "5", timeout=60_000)
    expect(bar).to_have_attribute("data-failed", "0")
    expect(bar).to_have_attribute("aria-valuenow", "5")
    expect(tid(page, "batch-rerun")).to_be_disabled()
    assert_no_leaked_values(page, "the batch page after Re-run failed")
    final = progress(api_client, batch_id)["progress"]
    expect(tid(page, "batch-cost")).to_have_attribute("data-usd", final["cost_usd"])

    with page.expect_download() as download:
        tid(page, "batch-export-csv").click()
    text = download.value.path().read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 6, rows[:3]  # a header and one row per item
    assert download.value.suggested_filename.endswith(".csv")

    go(page, "#/batches")
    row = page.locator(f'[data-testid="batch-row"][data-batch-id="{batch_id}"]')
    expect(row).to_be_visible()
    expect(tid(row, "batch-progress")).to_have_attribute("data-succeeded", "5")
    shot(page, "batches")
