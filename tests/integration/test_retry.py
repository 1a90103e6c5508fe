"""POST /v1/jobs/{id}/retry (issue 17): a new job from a finished job's stored inputs,
linked by retry_of, admitted like a submit; 409 while the job runs, 404 when unknown."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import Stack
from tests.integration.helpers import scene_png, submit, wait_done

pytestmark = pytest.mark.integration


@pytest.fixture
def failing_gemini(stack: Stack) -> Iterator[str]:
    """The emulator answers every call 404 (a model this "Google" does not serve) until
    the fixture ends; yields the faults URL."""
    faults = f"{stack.env['VISIONQ_GEMINI_BASE_URL']}/_emulator/faults"
    httpx.post(faults, json={"always_fail": 404}).raise_for_status()
    try:
        yield faults
    finally:
        httpx.post(faults, json={"always_fail": None}).raise_for_status()


def test_a_failed_job_retried_after_the_fault_succeeds_and_links_retry_of(
    stack: Stack, failing_gemini: str
) -> None:
    data, _ = scene_png(1701)
    with stack.client() as client:
        submitted = submit(client, data, task="ask", prompt="How many shapes?")
        assert submitted.status_code == 202, submitted.text
        failed = wait_done(client, submitted.json()["id"])
        assert failed["status"] == "failed" and failed["error"]["code"] == "gemini_not_found"
        httpx.post(failing_gemini, json={"always_fail": None}).raise_for_status()

        key = {"Idempotency-Key": f"retry-{failed['id']}"}
        retried = client.post(f"/v1/jobs/{failed['id']}/retry", headers=key)
        assert retried.status_code == 202, retried.text
        new = retried.json()
        assert retried.headers["Location"] == f"/v1/jobs/{new['id']}"
        assert new["id"] != failed["id"] and new["retry_of"] == failed["id"]
        assert (new["task"], new["prompt"], new["model"]) == (
            "ask",
            "How many shapes?",
            failed["model"],
        )
        assert [i["sha256"] for i in new["inputs"]] == [i["sha256"] for i in failed["inputs"]]

        again = client.post(f"/v1/jobs/{failed['id']}/retry", headers=key)
        assert again.status_code == 202 and again.json()["id"] == new["id"]
        assert again.headers["Idempotent-Replayed"] == "true"

        done = wait_done(client, new["id"])
        assert done["status"] == "succeeded" and done["result"]
        assert done["retry_of"] == failed["id"]
        assert client.get(f"/v1/jobs/{failed['id']}").json()["status"] == "failed"


def test_retrying_a_succeeded_job_runs_it_again(stack: Stack) -> None:
    data, _ = scene_png(1702)
    with stack.client() as client:
        first = wait_done(client, submit(client, data, task="caption").json()["id"])
        assert first["status"] == "succeeded"
        retried = client.post(f"/v1/jobs/{first['id'][:8]}/retry")  # a unique prefix
        assert retried.status_code == 202, retried.text
        assert retried.json()["retry_of"] == first["id"]
        done = wait_done(client, retried.json()["id"])
    # Not a copy of the cached result: a new call, billed as such.
    assert done["status"] == "succeeded" and done["cached_from"] is None
    assert done["attempt_count"] >= 1 and done["options"]["cache"] is False


def test_retry_of_an_unknown_or_another_tenants_job_is_404(stack: Stack) -> None:
    data, _ = scene_png(1703)
    with stack.client() as client:
        unknown = client.post(f"/v1/jobs/{uuid.uuid4()}/retry")
        job_id = submit(client, data, task="caption").json()["id"]
        wait_done(client, job_id)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "job_not_found"
    with stack.client("globex") as other:
        theirs = other.post(f"/v1/jobs/{job_id}/retry")
    assert theirs.status_code == 404


def test_retry_of_a_running_job_is_409_and_of_a_cancelled_one_202(paused_stack: Stack) -> None:
    if paused_stack.worker is None:
        paused_stack.start_worker()
    data, _ = scene_png(1704)
    with paused_stack.client() as client:
        job_id = submit(client, data, task="caption").json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        running = client.post(f"/v1/jobs/{job_id}/retry")
        assert running.status_code == 409, running.text
        assert running.json()["error"]["code"] == "job_not_finished"
        assert "is running" in running.json()["error"]["message"]
        assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
        retried = client.post(f"/v1/jobs/{job_id}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["retry_of"] == job_id
        client.post(f"/v1/jobs/{retried.json()['id']}/cancel")
