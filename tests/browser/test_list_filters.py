"""The jobs list: every filter shows exactly what GET /v1/jobs answers for the same query,
the hash carries the filters (a reload keeps them), "Load more" pages, and a job submitted
meanwhile appears and turns succeeded without a reload."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.browser.conftest import PHONE
from tests.browser.drive import (
    add_batch_items,
    expect,
    go,
    new_batch,
    shot,
    sign_in,
    tid,
    two_models,
    wait_job,
    wait_until,
)
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import scene_png, submit


def seed(client: httpx.Client, png: bytes, task: str, model: str, tier: str) -> str:
    answer = submit(client, png, task=task, model=model, options={"tier": tier})
    return str(answer.raise_for_status().json()["id"])


def stamp(moment: datetime) -> str:
    """A datetime-local value with milliseconds (Chromium drops a ".000").

    The time fields are step=60 (minutes only, for people), yet the test types a
    millisecond boundary between jobs seeded ~1 s apart: a minute-aligned boundary would
    need the seeds to straddle a minute (up to 60 s of waiting). Chromium's fill() sets an
    off-step value as typed (step only marks it invalid for form submission, which the page
    does not use) and the page sends it as is, which the API comparison below checks.
    """
    if moment.microsecond < 1000:
        moment += timedelta(milliseconds=1)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds")


def shown_ids(page) -> list[str]:
    return tid(page, "job-row").evaluate_all("rows => rows.map(r => r.dataset.jobId)")


def api_ids(client: httpx.Client, query: dict[str, str]) -> list[str]:
    jobs = client.get("/v1/jobs", params=query).raise_for_status().json()["jobs"]
    return [job["id"] for job in jobs]


def assert_list_is(page, client: httpx.Client, query: dict[str, str]) -> list[str]:
    """The rows on screen are GET /v1/jobs?<query>'s first page, in its order (read again
    on each look: a job of an earlier test may still end meanwhile)."""

    def same() -> tuple[list[str]] | None:
        wanted = api_ids(client, query)
        return (wanted,) if shown_ids(page) == wanted else None  # a tuple: [] is an answer

    (wanted,) = wait_until(same, 15, f"rows for {query} = GET /v1/jobs")
    if not wanted:
        expect(tid(page, "jobs-empty")).to_be_visible()
    return wanted


def job_status(client: httpx.Client, job_id: str) -> str:
    return str(client.get(f"/v1/jobs/{job_id}").raise_for_status().json()["status"])


def rows_attribute(page, name: str) -> set[str]:
    values = tid(page, "job-row").evaluate_all(f"rows => rows.map(r => r.dataset.{name})")
    return set(values)


def test_filters_paging_and_live_rows(
    page, new_page, stack: ConsoleStack, api_client: httpx.Client, emulator_faults: Any
) -> None:
    png, _ = scene_png(seed=61)
    first, second = two_models(api_client)
    early = [
        seed(api_client, png, "caption", first, "standard"),
        seed(api_client, png, "detect", second, "flex"),
        seed(api_client, png, "caption", second, "flex"),
    ]
    time.sleep(0.55)
    boundary = stamp(datetime.now(UTC))
    time.sleep(0.55)
    late = [
        seed(api_client, png, "detect", first, "standard"),
        seed(api_client, png, "caption", first, "flex"),
    ]
    batch_id = new_batch(api_client, f"filters-{uuid.uuid4().hex[:8]}", "detect", model=first)
    add_batch_items(api_client, batch_id, [png, png])
    for job_id in early + late:
        wait_job(api_client, job_id)
    batch_jobs = wait_until(
        lambda: api_ids(api_client, {"batch": batch_id}), 30, "the batch's jobs listed"
    )
    for job_id in batch_jobs:
        wait_job(api_client, job_id)

    sign_in(page, stack)
    assert_list_is(page, api_client, {})
    checks = [
        ("filter-status", "status", "succeeded", "status"),
        ("filter-task", "task", "detect", "task"),
        ("filter-model", "model", second, "model"),
        ("filter-tier", "tier", "flex", "tier"),
    ]
    for testid, name, value, attribute in checks:
        tid(page, testid).select_option(value)
        expect(page).to_have_url(f"{stack.console_url}#/jobs?{name}={value}")
        shown = assert_list_is(page, api_client, {name: value})
        assert shown and rows_attribute(page, attribute) == {value}, (name, value)
        tid(page, "filter-clear").click()
        expect(page).to_have_url(f"{stack.console_url}#/jobs")

    tid(page, "filter-batch").fill(batch_id)
    tid(page, "filter-batch").press("Tab")
    shown = assert_list_is(page, api_client, {"batch": batch_id})
    assert sorted(shown) == sorted(batch_jobs)
    assert rows_attribute(page, "batchId") == {batch_id}
    tid(page, "filter-clear").click()

    tid(page, "filter-from").fill(boundary)
    shown = assert_list_is(page, api_client, {"created_after": boundary})
    assert set(late) <= set(shown) and not set(early) & set(shown)
    tid(page, "filter-from").fill("")
    tid(page, "filter-to").fill(boundary)
    shown = assert_list_is(page, api_client, {"created_before": boundary})
    assert set(early) <= set(shown) and not set(late) & set(shown)

    # Two filters at once, kept by a reload (they live in the hash).
    tid(page, "filter-to").fill("")
    tid(page, "filter-task").select_option("caption")
    tid(page, "filter-tier").select_option("flex")
    query = {"task": "caption", "tier": "flex"}
    assert_list_is(page, api_client, query)
    page.reload()
    expect(tid(page, "filter-task")).to_have_value("caption")
    expect(tid(page, "filter-tier")).to_have_value("flex")
    assert_list_is(page, api_client, query)

    # Paging: five a page, "Load more" appends the next five.
    go(page, "#/jobs?limit=5")
    page_one = assert_list_is(page, api_client, {"limit": "5"})
    assert len(page_one) == 5
    listed = api_client.get("/v1/jobs", params={"limit": "5"}).json()
    after = api_ids(api_client, {"limit": "5", "cursor": listed["next_cursor"]})
    tid(page, "jobs-more").click()
    wait_until(lambda: shown_ids(page) == page_one + after, 15, "the second page appended")

    # Live: a job submitted elsewhere appears, then turns succeeded, with no reload. The
    # list's polls run on Playwright's clock (installed before the page loads), so the
    # test fires the 5 s first-page poll itself once the API says the job is running (held
    # 10 s at the emulator), and the 2 s row refresh once the API says it succeeded: no
    # race between the hang and the poll period.
    live_page = new_page()
    live_page.clock.install()
    sign_in(live_page, stack)
    assert_list_is(live_page, api_client, {})
    live_page.clock.pause_at(datetime.now(UTC) + timedelta(seconds=1))
    with emulator_faults(hang_rate=1, hang_s=10):
        # A new image: the same request again would be answered from visionq's cache.
        live = seed(api_client, scene_png(seed=62)[0], "caption", first, "standard")
        wait_until(lambda: job_status(api_client, live) == "running", 30, "the job runs")
        row = live_page.locator(f'[data-testid="job-row"][data-job-id="{live}"]')
        expect(row).to_have_count(0)
        live_page.clock.run_for(5_000)
        expect(row).to_have_count(1)
        assert row.get_attribute("data-status") in ("queued", "running")
        wait_job(api_client, live)
    live_page.clock.run_for(5_000)
    expect(row).to_have_attribute("data-status", "succeeded")
    go(page, "#/jobs")
    expect(page.locator(f'[data-testid="job-row"][data-job-id="{live}"]')).to_have_count(1)
    shot(page, "jobs")
    phone = new_page(PHONE)
    sign_in(phone, stack)
    expect(tid(phone, "job-row").first).to_be_visible()
    shot(phone, "jobs")
