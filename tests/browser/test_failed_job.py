"""A job that failed on every attempt shows each attempt's outcome, HTTP status, error and
retry delay, and can be retried from the page; a running job can be cancelled from it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx

from tests.browser.drive import (
    expect,
    go,
    hold_requests,
    open_job,
    shot,
    sign_in,
    tid,
    wait_held,
    wait_job,
    wait_status,
)
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import scene_png, submit

if TYPE_CHECKING:
    from playwright.sync_api import Page


def test_failed_attempts_shown_then_retried(
    page, stack: ConsoleStack, api_client: httpx.Client, emulator_faults: Any
) -> None:
    png, _ = scene_png(seed=41)
    with emulator_faults(always_fail=503):
        job_id = submit(api_client, png, task="caption").raise_for_status().json()["id"]
        job = wait_job(api_client, job_id)
    assert job["status"] == "failed" and len(job["attempts"]) == 3, job

    sign_in(page, stack)
    open_job(page, job_id)
    wait_status(page, "failed")
    attempts = tid(page, "attempt")
    expect(attempts).to_have_count(3)
    for index, attempt in enumerate(job["attempts"]):
        item = attempts.nth(index)
        expect(item).to_have_attribute("data-number", str(attempt["number"]))
        expect(item).to_have_attribute("data-outcome", "failed")
        expect(item).to_have_attribute("data-http-status", "503")
        assert attempt["error_message"], attempt
        expect(item).to_contain_text(attempt["error_message"])
        if index < 2:
            delay = float(item.get_attribute("data-retry-delay-s") or "0")
            assert delay > 0, attempt
            expect(item).to_contain_text("retried after")
    expect(tid(page, "job-error")).to_be_visible()
    expect(tid(page, "job-error")).to_contain_text(job["error"]["code"])
    expect(tid(page, "job-cancel")).to_be_disabled()
    expect(tid(page, "job-retry")).to_be_enabled()
    shot(page, "job-failed")

    tid(page, "job-retry").click()  # the emulator answers again
    expect(page).not_to_have_url(re.compile(re.escape(job_id) + "$"))
    new_id = tid(page, "job-page").get_attribute("data-job-id")
    assert new_id and new_id != job_id
    expect(page).to_have_url(f"{stack.console_url}#/jobs/{new_id}")
    expect(tid(page, "retry-of")).to_have_attribute("href", f"#/jobs/{job_id}")
    wait_status(page, "succeeded")
    assert api_client.get(f"/v1/jobs/{new_id}").json()["retry_of"] == job_id


def open_running_job(page: Page, client: httpx.Client, seed: int) -> str:
    """Submit a caption job and open its page once running (the emulator hangs); its id."""
    png, _ = scene_png(seed=seed)
    job_id: str = submit(client, png, task="caption").raise_for_status().json()["id"]
    open_job(page, job_id)
    wait_status(page, "running", timeout_ms=20_000)
    return job_id


def test_running_job_cancelled_from_its_page(
    page, stack: ConsoleStack, api_client: httpx.Client, emulator_faults: Any
) -> None:
    sign_in(page, stack)
    with emulator_faults(hang_rate=1, hang_s=15):
        job_id = open_running_job(page, api_client, seed=42)
        expect(tid(page, "job-retry")).to_be_disabled()
        tid(page, "job-cancel").click()
        wait_status(page, "cancelled", timeout_ms=15_000)
        expect(tid(page, "job-cancel")).to_be_disabled()
        expect(tid(page, "job-retry")).to_be_enabled()
    assert api_client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"


def test_nothing_runs_after_leaving_a_page_during_its_action(
    page, stack: ConsoleStack, api_client: httpx.Client, emulator_faults: Any
) -> None:
    sign_in(page, stack)
    with emulator_faults(hang_rate=1, hang_s=8):
        job_id = open_running_job(page, api_client, seed=43)
        held = hold_requests(page, "**/v1/jobs/*/cancel")
        tid(page, "job-cancel").click()
        wait_held(page, held, "Cancel sent no request")
        go(page, "#/submit")
        expect(tid(page, "drop-zone")).to_be_attached()
        later: list[str] = []
        page.on("request", lambda request: later.append(request.url))
        for route in held:
            route.continue_()
        page.wait_for_timeout(4000)  # a job page still alive would poll or refresh now
    assert not [url for url in later if f"/v1/jobs/{job_id}" in url], later
    assert "Refresh failed" not in (tid(page, "toast").text_content() or "")
