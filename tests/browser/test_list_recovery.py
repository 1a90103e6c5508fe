"""The jobs list under a flaky network: a failed load offers a retry and recovers on its
own, and an answer for filters no longer chosen (a first page or a "Load more") never lands
over the current ones."""

from __future__ import annotations

import httpx

from tests.browser.conftest import ConsoleLog
from tests.browser.drive import expect, go, hold_requests, sign_in, tid, wait_held, wait_job
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import scene_png, submit


def test_failed_load_offers_retry_and_recovers(
    page, stack: ConsoleStack, console_log: ConsoleLog, api_client: httpx.Client
) -> None:
    job_id = submit(api_client, scene_png(seed=120)[0], task="caption").json()["id"]
    wait_job(api_client, job_id)
    console_log.expect(r"ERR_FAILED")  # the aborted requests, logged by Chromium itself
    sign_in(page, stack, route="#/spending")
    page.route("**/v1/jobs?*", lambda route: route.abort())
    go(page, "#/jobs")
    expect(tid(page, "jobs-retry")).to_be_visible()
    page.unroute("**/v1/jobs?*")
    expect(tid(page, "jobs-table")).to_have_attribute("data-loaded", "true", timeout=15_000)
    expect(tid(page, "jobs-retry")).to_be_hidden()
    expect(tid(page, "job-row").first).to_be_visible()


def test_answer_for_old_filters_never_lands(
    page, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    png = scene_png(seed=121)[0]
    for task in ("caption", "detect"):
        wait_job(api_client, submit(api_client, png, task=task).json()["id"])
    sign_in(page, stack)
    expect(tid(page, "job-row").first).to_be_visible()
    held = hold_requests(page, "**/v1/jobs?*task=caption*")
    tid(page, "filter-task").select_option("caption")
    wait_held(page, held, "the list never asked for the caption jobs")
    tid(page, "filter-task").select_option("detect")
    expect(tid(page, "job-row").first).to_have_attribute("data-task", "detect")
    for route in held:
        route.continue_()
    page.wait_for_timeout(1000)  # the late answer arrives now
    tasks = tid(page, "job-row").evaluate_all("rows => rows.map(r => r.dataset.task)")
    assert tasks and set(tasks) == {"detect"}, tasks


def test_late_load_more_never_lands_after_a_filter_change(
    page, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    png = scene_png(seed=122)[0]
    for task in ("caption", "caption", "detect", "detect"):
        wait_job(api_client, submit(api_client, png, task=task).json()["id"])
    sign_in(page, stack)
    go(page, "#/jobs?task=caption&limit=1")
    expect(tid(page, "job-row")).to_have_count(1)
    held = hold_requests(page, "**/v1/jobs?*cursor=*")
    tid(page, "jobs-more").click()
    wait_held(page, held, "Load more sent no request")
    tid(page, "filter-task").select_option("detect")
    expect(tid(page, "job-row").first).to_have_attribute("data-task", "detect")
    for route in held:
        route.continue_()
    page.unroute("**/v1/jobs?*cursor=*")
    page.wait_for_timeout(1000)  # the late caption page arrives now
    tasks = tid(page, "job-row").evaluate_all("rows => rows.map(r => r.dataset.task)")
    assert tasks == ["detect"], tasks
    with page.expect_request("**/v1/jobs?*cursor=*") as more:
        tid(page, "jobs-more").click()
    assert "task=detect" in more.value.url, more.value.url
    expect(tid(page, "job-row")).to_have_count(2)
    tasks = tid(page, "job-row").evaluate_all("rows => rows.map(r => r.dataset.task)")
    assert tasks == ["detect", "detect"], tasks
