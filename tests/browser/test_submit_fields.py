"""What the Submit page sends reaches the job, and the job page shows the job's own numbers:
labels and tier picked on the page are the created job's labels and tier (GET /v1/jobs/{id}),
and the job page's estimated and actual tokens and cost are the job's fields."""

from __future__ import annotations

import httpx

from tests.browser.drive import drop_files, expect, open_job, sign_in, tid, wait_job
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import scene_png


def tokens(count: int | None) -> str:
    """A token count as the page writes it (en-US grouping; a dash when unknown)."""
    return "\u2013" if count is None else f"{count:,}"


def test_labels_and_tier_reach_the_job_and_its_page_shows_estimate_and_actual(
    page, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    png, _ = scene_png(seed=81)
    sign_in(page, stack, route="#/submit")
    drop_files(page, '[data-testid="drop-zone"]', [("labels.png", png, "image/png")])
    expect(tid(page, "file-item")).to_have_count(1)
    tid(page, "submit-task").select_option("classify")
    tid(page, "submit-labels").fill(" circle, square ,, photo ")
    tid(page, "submit-tier").select_option("flex")
    expect(tid(page, "estimate")).to_have_attribute("data-state", "ready")
    tid(page, "submit-send").click()
    row = tid(tid(page, "submitted"), "job-row")
    expect(row).to_have_count(1)
    job_id = row.get_attribute("data-job-id")
    assert job_id
    job = wait_job(api_client, job_id)
    assert job["status"] == "succeeded", job
    assert job["task"] == "classify"
    assert job["labels"] == ["circle", "square", "photo"], job["labels"]
    assert job["tier"] == "flex" and job["options"].get("tier") == "flex", job

    open_job(page, job_id)
    estimate, usage = job["estimate"], job["usage"]
    assert estimate and usage and job["cost_usd"] is not None, job
    expect(tid(page, "estimate-tokens")).to_have_attribute(
        "data-tokens", str(estimate["input_tokens"])
    )
    expect(tid(page, "actual-tokens")).to_have_attribute("data-tokens", str(usage["prompt_tokens"]))
    counts = [usage[name] for name in ("prompt_tokens", "candidates_tokens", "total_tokens")]
    expect(tid(page, "actual-tokens")).to_have_text(" / ".join(tokens(n) for n in counts))
    low, high = estimate["cost_usd"]["min"], estimate["cost_usd"]["max"]
    expect(tid(page, "estimate-usd")).to_have_attribute("data-min", str(low))
    expect(tid(page, "estimate-usd")).to_have_attribute("data-max", str(high))
    expect(tid(page, "actual-usd")).to_have_attribute("data-usd", str(job["cost_usd"]))
