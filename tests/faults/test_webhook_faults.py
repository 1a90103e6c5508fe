"""A webhook receiver down for a while under 200 job completions (issue 21), SQLite and
PostgreSQL: every job's event is delivered once the receiver is back, each event id at least
once and deduplicable (the same id always carries the same body), none lost, order not
assumed; every request verifies with the Standard Webhooks reference library.

The run: an endpoint for job.*, the receiver up; a first wave of 60 jobs; once 40 events
arrived the receiver goes down (connection refused); a second wave of 140 jobs ends while it
is down (their deliveries fail, the endpoint turns failing: one probe at a time) and one of
the two workers is SIGKILLed meanwhile (a claim it held expires and is taken again); 3 s
after every job ended the receiver comes back on the same port."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.faults.batchaudit import TEMPORARY_SUFFIX
from tests.faults.conftest import report
from tests.faults.stack import FaultStack
from tests.webhookrecv import Received, Receiver
from visionq.worker.webhook_relay import DISPATCH_CLAIM_S

pytestmark = pytest.mark.faults
FIRST_WAVE = 60
SECOND_WAVE = 140
N = FIRST_WAVE + SECOND_WAVE
SEEN_BEFORE_DOWN = 40
JOB_EVENTS = ["job.succeeded", "job.failed", "job.cancelled"]


def _ok_subjects(received: list[Received]) -> set[str]:
    return {r.subject_id for r in received if r.ok}


def _settled_endpoint(client: httpx.Client, endpoint_id: str, timeout: float) -> dict[str, Any]:
    """The endpoint once none of its deliveries is pending (or as it is at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        shown: dict[str, Any] = client.get(f"/v1/webhooks/{endpoint_id}").json()
        if shown["pending"] == 0 or time.monotonic() > deadline:
            return shown
        time.sleep(0.2)


def test_receiver_down_under_200_completions(
    make_stack: Callable[..., FaultStack], database: str | None
) -> None:
    stack = make_stack(
        database, emulator_flags=["--latency-ms", "200"],
        webhook_retry_delays_s="[0.2, 0.5, 1, 2]", webhook_retry_window_s="300",
        webhook_poll_s="0.2", webhook_timeout_s="2",
        url_fetch_allowed_networks='["127.0.0.0/8"]',
    )  # fmt: skip
    stack.start_worker(concurrency=8)
    stack.start_worker(concurrency=8)
    with Receiver([]) as receiver, stack.client() as client:
        created = client.post("/v1/webhooks", json={"url": receiver.url, "events": JOB_EVENTS})
        assert created.status_code == 201, created.text
        endpoint = created.json()
        receiver.secrets = [endpoint["secret"]]

        first = stack.submit_many(FIRST_WAVE)
        receiver.wait_for(lambda got: len(_ok_subjects(got)) >= SEEN_BEFORE_DOWN, timeout=60)
        receiver.down()
        second = stack.submit_many(SECOND_WAVE)
        responses = first + second
        assert all(r.status_code == 202 for r in responses), {r.status_code for r in responses}
        job_ids = {r.json()["id"] for r in responses}
        # Half the second wave ends with both workers, then one is killed mid-stream.
        stack.wait_for(lambda c: c.get("succeeded", 0) >= FIRST_WAVE + SECOND_WAVE // 2,
                       timeout=60, what="half the second wave ended")  # fmt: skip
        stack.kill_worker(signal.SIGKILL, index=-1)
        stack.wait_all_terminal(N, timeout=90)
        time.sleep(3)
        held_while_down = len(_ok_subjects(receiver.snapshot()))
        failing = client.get(f"/v1/webhooks/{endpoint['id']}").json()
        receiver.up()
        back_at = time.time()

        # Within a minute as a rule; but if the killed worker held the failing endpoint's one
        # probe, sending resumes only when that claim expires (DISPATCH_CLAIM_S): CI met it.
        receiver.wait_for(lambda got: _ok_subjects(got) >= job_ids, timeout=DISPATCH_CLAIM_S + 60)
        settled_at = time.time()
        received = receiver.snapshot()
        # The receiver answers before the sender records that answer: wait for the records.
        shown = _settled_endpoint(client, endpoint["id"], timeout=30)

    # Every 202 ended, exactly once; no 500, no temporary file.
    audit = stack.audit()
    audit.check_exactly_once()
    statuses = {job["id"]: job["status"] for job in audit.jobs}
    assert set(statuses) == job_ids
    api_log = (stack.workdir / "api.log").read_text(errors="replace")
    assert "Traceback" not in api_log and " 500 " not in api_log
    assert not list((stack.workdir / "blobs").rglob(f"*{TEMPORARY_SUFFIX}"))

    # Every request verified with the reference library; each event id names one job and
    # the job's real status, and carries the same bytes every time (deduplicable).
    unverified = [r for r in received if not r.verified]
    assert unverified == []
    delivered = [r for r in received if r.ok]
    bodies: dict[str, bytes] = {}
    subject_of: dict[str, str] = {}
    for request in delivered:
        assert bodies.setdefault(request.msg_id, request.body) == request.body, request.msg_id
        assert subject_of.setdefault(request.msg_id, request.subject_id) == request.subject_id
        assert request.type == f"job.{statuses[request.subject_id]}", request
    assert len(subject_of) == N and set(subject_of.values()) == job_ids  # one event a job

    # The outbox: one event per job, every delivery succeeded, the endpoint healthy again;
    # the failed attempts are the receiver's downtime (no HTTP answer).
    rows = stack.webhook_rows()
    assert len(rows.events) == N
    assert {event["id"] for event in rows.events} == set(subject_of)
    assert rows.delivery_states() == {"succeeded": N}
    failed = rows.failed_attempts()
    assert failed and all(row["status_code"] is None for row in failed), failed[:3]
    assert failing["failing_since"] is not None and held_while_down < N
    assert shown["enabled"] is True and shown["failing_since"] is None
    assert shown["consecutive_failures"] == 0 and shown["pending"] == 0

    duplicates = len(delivered) - len(subject_of)
    last_delivery = max(r.at for r in delivered)
    first_after_up = min(r.at for r in delivered if r.at >= back_at)
    report("webhook receiver down", audit.figures(
        events=len(rows.events), unique_ids=len(subject_of), duplicates=duplicates,
        requests=len(received), failed_attempts=len(failed),
        failed_attempt_outcomes=dict(Counter(row["outcome"] for row in failed)),
        verify_failures=len(unverified), delivered_before_down=held_while_down,
        seconds_up_to_first_delivery=round(first_after_up - back_at, 2),
        seconds_up_to_last_delivery=round(last_delivery - back_at, 2),
        seconds_up_to_all_seen=round(settled_at - back_at, 2),
    ))  # fmt: skip
