"""Retrying a batch item's job (POST /v1/jobs/{id}/retry, `visionq retry`): a re-run of that
item through its batch, so a later batch re-run does not run (and bill) it a second time; an
older job a newer one replaced in its item is a 409 job_superseded."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.integration.batch_api_calls import (
    _add,
    _all_items,
    _create,
    _error,
    _items,
    _jobs,
    _wait_done,
)
from tests.integration.conftest import Stack
from tests.integration.test_cli import visionq
from tests.services import visionq_command

pytestmark = pytest.mark.integration


@pytest.fixture
def faults(stack: Stack) -> Iterator[str]:
    """The emulator's faults URL; every call answered normally again when the test ends."""
    url = f"{stack.env['VISIONQ_GEMINI_BASE_URL']}/_emulator/faults"
    try:
        yield url
    finally:
        httpx.post(url, json={"always_fail": None}).raise_for_status()


def _failing(url: str, on: bool) -> None:
    """Make the emulator answer every call 404 (the jobs fail at once), or not."""
    httpx.post(url, json={"always_fail": 404 if on else None}).raise_for_status()


def _failed_batch(client: httpx.Client, faults: str, name: str, seeds: range) -> str:
    """A batch whose items' jobs all failed (Gemini refused them); Gemini works after."""
    batch_id = str(_create(client, name, priority=7).json()["id"])
    _failing(faults, True)
    try:
        _add(client, batch_id, _items(seeds, "img-"))
        done = _wait_done(client, batch_id)
    finally:
        _failing(faults, False)
    assert done["progress"]["counts"]["failed"] == len(seeds), done["progress"]
    return batch_id


def test_retrying_an_items_job_reruns_the_item_in_its_batch(stack: Stack, faults: str) -> None:
    name = f"retry-in-batch-{uuid.uuid4().hex[:8]}"
    with stack.client() as client:
        batch_id = _failed_batch(client, faults, name, range(1800, 1803))
        items = _all_items(client, batch_id, limit=100)
        old = items[0]["job_id"]
        key = {"Idempotency-Key": f"retry-{old}"}
        retried = client.post(f"/v1/jobs/{old}/retry", headers=key)
        assert retried.status_code == 202, retried.text
        new: dict[str, Any] = retried.json()
        assert new["retry_of"] == old and new["priority"] == 7
        assert (new["batch_id"], new["batch_key"]) == (batch_id, items[0]["key"])
        again = client.post(f"/v1/jobs/{old}/retry", headers=key)
        assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
        assert (again.json()["id"], again.json()["batch_id"]) == (new["id"], batch_id)

        # The batch counts the item as re-run: its latest job is the new one, succeeded.
        done = _wait_done(client, batch_id)
        counts = done["progress"]["counts"]
        assert (counts["succeeded"], counts["failed"]) == (1, 2), counts
        after = _all_items(client, batch_id, limit=100)
        assert (after[0]["job_id"], after[0]["reruns"]) == (new["id"], 1)
        assert after[0]["status"] == "succeeded"

        # The old job was replaced in its item: retrying it would run the item twice.
        message = _error(client.post(f"/v1/jobs/{old}/retry"), 409, "job_superseded")
        assert new["id"] in message and f"visionq batch rerun {name}" in message

        # A batch re-run of the failed items leaves the retried one alone.
        rerun = client.post(f"/v1/batches/{batch_id}/rerun", json={})
        assert rerun.status_code == 202 and rerun.json()["rerun"] == 2, rerun.text
        done = _wait_done(client, batch_id)
        assert done["progress"]["counts"]["succeeded"] == 3
        final = _all_items(client, batch_id, limit=100)
        assert [item["reruns"] for item in final] == [1, 1, 1]
        assert final[0]["job_id"] == new["id"]
        # The estimate counters moved as a re-run moves them: the latest jobs' estimates
        # plus what the replaced ones cost (each bound rounded up to a nano-dollar).
        latest = _jobs(client, [item["job_id"] for item in final])
        replaced = _jobs(client, [item["job_id"] for item in items])
        spent = sum(Decimal(job["cost_usd"] or 0) for job in replaced.values())
        bound = spent + sum(Decimal(j["estimate"]["cost_usd"]["max"]) for j in latest.values())
        whole = Decimal(done["progress"]["estimate_usd"]["max"])
        assert bound <= whole <= bound + Decimal("0.000000001") * len(latest)


def test_the_same_retry_sent_twice_at_once_answers_one_job(stack: Stack, faults: str) -> None:
    # A client resending after a timeout while its first request still runs: the second
    # waits on the batch lock, then finds the item already replaced. It must answer the
    # first one's job (a replay), never a 409 job_superseded naming it.
    name = f"retry-race-{uuid.uuid4().hex[:8]}"
    with stack.client() as client:
        batch_id = _failed_batch(client, faults, name, range(1810, 1814))
        items = _all_items(client, batch_id, limit=100)

    def send(job_id: str, start: threading.Barrier) -> httpx.Response:
        with stack.client() as own:  # one connection each: the two are sent at once
            start.wait()
            return own.post(f"/v1/jobs/{job_id}/retry", headers={"Idempotency-Key": job_id})

    for item in items:
        start = threading.Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            sent = [pool.submit(send, item["job_id"], start) for _ in range(2)]
            answers = [future.result() for future in sent]
        assert [answer.status_code for answer in answers] == [202, 202], [
            answer.text for answer in answers
        ]
        made = {answer.json()["id"] for answer in answers}
        assert len(made) == 1, made
        assert sorted(a.headers.get("Idempotent-Replayed", "") for a in answers) == ["", "true"]
    with stack.client() as client:
        assert [item["reruns"] for item in _all_items(client, batch_id, limit=100)] == [1] * 4


def _tenant_key(stack: Stack, tenant: str) -> None:
    """An API key of a tenant of this test's own (its --status lists only its jobs)."""
    made = subprocess.run(
        visionq_command("keys", "create", "k", "--tenant", tenant),
        env=stack.env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    stack.keys[tenant] = made.stdout.strip().splitlines()[-1]


def test_cli_retry_status_failed_retries_items_in_their_batch(stack: Stack, faults: str) -> None:
    tenant = f"retry-batch-{uuid.uuid4().hex[:8]}"
    _tenant_key(stack, tenant)
    name = "cli-failed"
    with stack.client(tenant) as client:
        batch_id = _failed_batch(client, faults, name, range(1810, 1812))
        first = _all_items(client, batch_id, limit=100)
        # A re-run while Gemini still refuses: each item's first job is replaced, both fail.
        _failing(faults, True)
        try:
            assert client.post(f"/v1/batches/{batch_id}/rerun", json={}).json()["rerun"] == 2
            _wait_done(client, batch_id)
        finally:
            _failing(faults, False)
        second = _all_items(client, batch_id, limit=100)

    # Four failed jobs: the two latest are retried in the batch, the two replaced skipped.
    done = visionq(stack, "retry", "--status", "failed", "--wait", "--json", key=tenant)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert sorted(job["retry_of"] for job in made) == sorted(i["job_id"] for i in second)
    assert {job["batch_id"] for job in made} == {batch_id}
    assert {job["status"] for job in made} == {"succeeded"}
    assert "skipped 2 failed job(s): a newer job replaced each" in done.stderr
    assert "error" not in done.stderr and "Traceback" not in done.stderr

    with stack.client(tenant) as client:
        batch = _wait_done(client, batch_id)
        assert batch["progress"]["counts"]["succeeded"] == 2
        assert [item["reruns"] for item in _all_items(client, batch_id, limit=100)] == [2, 2]
    rerun = visionq(stack, "batch", "rerun", name, key=tenant)
    assert rerun.returncode == 0, rerun.stderr
    assert f"nothing to re-run in batch {name}" in rerun.stdout, rerun.stdout

    # Asked for by id, a replaced job is an error naming what to do.
    by_id = visionq(stack, "retry", first[0]["job_id"], key=tenant)
    assert by_id.returncode == 1
    assert f"visionq batch rerun {name}" in by_id.stderr and "Traceback" not in by_id.stderr
