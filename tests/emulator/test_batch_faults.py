"""Batch API faults, flex latency and the priority downgrade rate, through the real SDK.

Each test resets the shared emulator and sets its faults at runtime (``set_faults``); one
test starts an emulator with the faults given as CLI flags instead.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.emulator.batch_helpers import (
    create_inline,
    raw_get,
    text_request,
    wait_state,
)
from tests.emulator.conftest import MODEL, make_client, running_emulator
from tests.emulator.helpers import set_faults, stats


def test_stalled_batch_shows_no_progress_until_cancelled(
    batch_url: str, batch_sdk: genai.Client
) -> None:
    set_faults(batch_url, batch_stall=True, batch_stall_count=1)
    stalled = create_inline(batch_sdk, 2)
    before = raw_get(batch_url, stalled)
    healthy = create_inline(batch_sdk, 2)  # only the next batch stalls
    assert wait_state(batch_url, healthy)["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    after = raw_get(batch_url, stalled)
    assert after == before  # same state, updateTime and batchStats
    assert after["metadata"]["state"] == "BATCH_STATE_PENDING"
    batch_sdk.batches.cancel(name=stalled)
    assert raw_get(batch_url, stalled)["metadata"]["state"] == "BATCH_STATE_CANCELLED"


def test_stall_count_zero_stalls_every_batch(batch_url: str, batch_sdk: genai.Client) -> None:
    set_faults(batch_url, batch_stall=True, batch_pending_s=0)
    names = [create_inline(batch_sdk, 1) for _ in range(3)]
    time.sleep(0.3)  # batch_pending_s 0: an unstalled batch would have moved by now
    for name in names:
        assert raw_get(batch_url, name)["metadata"]["state"] == "BATCH_STATE_PENDING"


def test_forced_expiry_then_normal_batches(batch_url: str, batch_sdk: genai.Client) -> None:
    set_faults(batch_url, batch_expire_after_s=0.5, batch_expire_count=1)
    doomed = create_inline(batch_sdk, 2)
    normal = create_inline(batch_sdk, 2)
    expired = wait_state(batch_url, doomed)
    meta = expired["metadata"]
    assert meta["state"] == "BATCH_STATE_EXPIRED" and expired["done"] is True
    assert "output" not in meta and "endTime" in meta
    assert "successfulRequestCount" not in meta["batchStats"]
    typed = batch_sdk.batches.get(name=doomed)
    assert typed.state == types.JobState.JOB_STATE_EXPIRED
    assert wait_state(batch_url, normal)["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"


def test_batch_not_done_within_its_ttl_expires_while_running() -> None:
    flags = ("--batch-ttl-s", "1", "--batch-pending-s", "0", "--batch-lines-per-s", "2")
    with running_emulator(*flags) as slow:
        client = make_client(slow)
        name = create_inline(client, 10)
        done = wait_state(slow, name)
        meta = done["metadata"]
        assert meta["state"] == "BATCH_STATE_EXPIRED"
        assert "output" not in meta and "response" not in done
        # Some lines were answered before the expiry; their results are gone with it.
        assert int(meta["batchStats"]["pendingRequestCount"]) > 0


@pytest.mark.parametrize(
    ("status", "name"), [(500, "INTERNAL"), (429, "RESOURCE_EXHAUSTED"), (400, "INVALID_ARGUMENT")]
)
def test_failed_lines_carry_the_status(
    batch_url: str, batch_sdk: genai.Client, status: int, name: str
) -> None:
    set_faults(batch_url, batch_fail_line_rate=1.0, batch_fail_line_status=status)
    batch = create_inline(batch_sdk, 3)
    done = wait_state(batch_url, batch)
    assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert done["metadata"]["batchStats"] == {"requestCount": "3", "failedRequestCount": "3"}
    typed = batch_sdk.batches.get(name=batch)
    assert typed.dest is not None and typed.dest.inlined_responses is not None
    for item in typed.dest.inlined_responses:
        assert item.response is None and item.error is not None
        assert item.error.code == status
        assert item.metadata is not None and item.metadata["job_id"].startswith("job-")
    raw_error = done["metadata"]["output"]["inlinedResponses"]["inlinedResponses"][0]["error"]
    assert raw_error["status"] == name
    assert stats(batch_url)["batch_lines_failed"] == 3


def test_part_of_the_lines_fail_at_a_rate(batch_url: str, batch_sdk: genai.Client) -> None:
    set_faults(batch_url, batch_fail_line_rate=0.3, fault_seed=5)
    done = wait_state(batch_url, create_inline(batch_sdk, 40))
    counts = done["metadata"]["batchStats"]
    failed, succeeded = int(counts["failedRequestCount"]), int(counts["successfulRequestCount"])
    assert failed + succeeded == 40 and 0 < failed < 40


def test_batch_fail_ends_the_next_batch_failed(batch_url: str, batch_sdk: genai.Client) -> None:
    set_faults(batch_url, batch_fail=True)
    failed = wait_state(batch_url, create_inline(batch_sdk, 2))
    assert failed["metadata"]["state"] == "BATCH_STATE_FAILED"
    assert failed["error"]["code"] == 500 and "output" not in failed["metadata"]
    assert (
        wait_state(batch_url, create_inline(batch_sdk, 2))["metadata"]["state"]
        == "BATCH_STATE_SUCCEEDED"
    )


def test_lost_create_makes_the_batch_but_answers_503(
    batch_url: str, batch_sdk: genai.Client
) -> None:
    set_faults(batch_url, batch_lose_create=1)
    src = [text_request("x", "lost-1")]
    with pytest.raises(errors.ServerError) as caught:
        batch_sdk.batches.create(model=MODEL, src=src, config={"display_name": "visionq-lost"})
    assert caught.value.code == 503
    listed = list(batch_sdk.batches.list())
    assert [job.display_name for job in listed] == ["visionq-lost"]
    assert listed[0].name is not None
    assert wait_state(batch_url, listed[0].name)["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    create_inline(batch_sdk, 1)  # only one create was lost
    assert stats(batch_url)["batches_created"] == 2


def test_delayed_create_is_listed_before_it_answers(
    batch_url: str, batch_sdk: genai.Client
) -> None:
    set_faults(batch_url, batch_create_delay_s=3)
    answered: list[str] = []

    def create() -> None:
        answered.append(create_inline(batch_sdk, 1, "visionq-late"))

    thread = threading.Thread(target=create)
    thread.start()
    deadline = time.monotonic() + 10
    while not list(batch_sdk.batches.list()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert stats(batch_url)["batches_created"] == 1
    assert answered == []  # listed while the create is still unanswered
    thread.join(timeout=10)
    assert answered and answered[0] == next(iter(batch_sdk.batches.list())).name


def test_batch_faults_as_cli_flags() -> None:
    flags = ("--batch-fail", "1", "--batch-fail-line-status", "429", "--flex-latency-ms", "5")
    with running_emulator(*flags, "--priority-downgrade-rate", "0.25", "--batch-stall") as base:
        settings = httpx.get(f"{base}/_emulator/faults").json()
        assert settings["batch_fail"] == 1 and settings["batch_fail_line_status"] == 429
        assert settings["flex_latency_ms"] == 5.0 and settings["batch_stall"] is True
        assert settings["priority_downgrade_rate"] == 0.25


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_fail_line_status": 418}, "batch_fail_line_status must be one of"),
        ({"batch_stall_count": -1}, "batch_stall_count must be an integer >= 0"),
        ({"priority_downgrade_rate": 2}, "priority_downgrade_rate must be a number from 0 to 1"),
        ({"batch_expire_after_s": -1}, "batch_expire_after_s must be null or a number"),
        ({"flex_latency_ms": -5}, "flex_latency_ms must be a number >= 0"),
    ],
)
def test_bad_batch_fault_values_are_400(
    batch_url: str, changes: dict[str, object], message: str
) -> None:
    set_faults(batch_url)
    response = httpx.post(f"{batch_url}/_emulator/faults", json=changes)
    assert response.status_code == 400 and message in response.json()["error"]["message"]


def _tiered(client: genai.Client, tier: types.ServiceTier) -> types.GenerateContentResponse:
    config = types.GenerateContentConfig(service_tier=tier)
    return client.models.generate_content(model=MODEL, contents="hello", config=config)


def _served(response: types.GenerateContentResponse) -> str | None:
    assert response.sdk_http_response is not None
    headers = response.sdk_http_response.headers or {}
    return headers.get("x-gemini-service-tier")


def test_flex_calls_wait_flex_latency(batch_url: str, batch_sdk: genai.Client) -> None:
    set_faults(batch_url, flex_latency_ms=400)
    started = time.monotonic()
    answer = _tiered(batch_sdk, types.ServiceTier.FLEX)
    assert time.monotonic() - started >= 0.4  # a lower bound only: the sleep is certain
    assert _served(answer) == "flex"
    assert stats(batch_url)["calls_by_tier"] == {"flex": 1}


def test_priority_downgrade_rate(batch_url: str, batch_sdk: genai.Client) -> None:
    set_faults(batch_url, priority_downgrade_rate=0.5, fault_seed=3)
    served = [_served(_tiered(batch_sdk, types.ServiceTier.PRIORITY)) for _ in range(30)]
    assert set(served) == {"priority", "standard"}
    counters = stats(batch_url)
    downgraded = served.count("standard")
    assert counters["faults"]["priority_downgraded"] == downgraded
    assert counters["calls_by_tier"] == {"priority": 30 - downgraded, "standard": downgraded}
    billed = counters["billed_usd_by_tier"]
    # Same request, so the same tokens: priority is billed 1.8x standard per call.
    per_priority = billed["priority"] / (30 - downgraded)
    assert per_priority == pytest.approx(1.8 * billed["standard"] / downgraded)
    set_faults(batch_url, priority_downgrade_rate=1.0)
    assert _served(_tiered(batch_sdk, types.ServiceTier.PRIORITY)) == "standard"
