"""Batch cancel and re-run with no worker: queued items end unrun, re-runs answer the budget."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest

from tests.integration.batch_api_calls import _add, _all_items, _create, _error, _items, _jobs
from tests.integration.conftest import Stack
from tests.integration.helpers import jobs_queue_length
from tests.services import visionq_command

pytestmark = pytest.mark.integration


def _budget_reserved(stack: Stack, tenant: str) -> Decimal:
    shown = subprocess.run(
        visionq_command("budgets", "show", tenant, "--json"),
        env=stack.env, capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    [state] = json.loads(shown)
    return Decimal(state["reserved_usd"])


def test_cancel_ends_queued_items_that_never_run(paused_stack: Stack) -> None:
    if paused_stack.worker is not None:
        paused_stack.worker.stop()
        paused_stack.worker = None
    tenant = f"batch-cancel-{paused_stack.name}"
    made = subprocess.run(
        visionq_command("keys", "create", "c", "--tenant", tenant),
        env=paused_stack.env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    key = made.stdout.strip().splitlines()[-1]
    subprocess.run(
        visionq_command("budgets", "set", tenant, "--daily", "100"),
        env=paused_stack.env, capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=paused_stack.api_url, headers=headers, timeout=60) as client:
        batch_id = _create(client, "to-cancel").json()["id"]
        added = _add(client, batch_id, _items(range(600, 606), "c"))
        assert added["created"] == 6
        assert _budget_reserved(paused_stack, tenant) > 0
        cancelled = client.post(f"/v1/batches/{batch_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()
        assert body["state"] == "cancelled" and body["cancelled_at"]
        assert body["progress"]["counts"]["cancelled"] == 6
        assert _budget_reserved(paused_stack, tenant) == 0
        again = client.post(f"/v1/batches/{batch_id}/cancel")
        assert again.status_code == 200 and again.json()["cancelled_at"] == body["cancelled_at"]
        _error(
            client.post(f"/v1/batches/{batch_id}/items", json={"items": _items(range(1), "x")}),
            409,
            "batch_cancelled",
        )
        _error(client.post(f"/v1/batches/{batch_id}/rerun", json={}), 409, "batch_cancelled")
        _error(client.post(f"/v1/batches/{batch_id}/close"), 409, "batch_cancelled")
        # The worker starts: the cancelled jobs' messages are taken and dropped, none run.
        redis_url = paused_stack.env["VISIONQ_REDIS_URL"]
        assert jobs_queue_length(redis_url) >= 6
        paused_stack.start_worker()
        deadline = time.monotonic() + 30
        while jobs_queue_length(redis_url) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # let the worker finish handling the messages it took
        ids = [item["job_id"] for item in _all_items(client, batch_id, limit=1000)]
        jobs = _jobs(client, ids)
    assert all(job["status"] == "cancelled" and job["attempts"] == [] for job in jobs.values())
    assert {job["error"]["code"] for job in jobs.values()} == {"cancelled"}


def _tenant_client(stack: Stack, tenant: str) -> httpx.Client:
    made = subprocess.run(
        visionq_command("keys", "create", "k", "--tenant", tenant),
        env=stack.env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    key = made.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.Client(base_url=stack.api_url, headers=headers, timeout=60)


def _set_budget(stack: Stack, tenant: str, daily: str) -> None:
    subprocess.run(
        visionq_command("budgets", "set", tenant, "--daily", daily),
        env=stack.env, capture_output=True, check=True, timeout=120,
    )  # fmt: skip


def test_reruns_pick_each_item_once_and_answer_the_budget(paused_stack: Stack) -> None:
    """No worker: items cancelled one by one are re-run (statuses=cancelled); two re-runs at
    once give each item one new job; a model retired is a 422, a budget too small a 402,
    and neither changes an item."""
    if paused_stack.worker is not None:
        paused_stack.worker.stop()
        paused_stack.worker = None
    tenant = f"batch-rerun-{paused_stack.name}"
    with _tenant_client(paused_stack, tenant) as client:
        batch_id = _create(client, "reruns").json()["id"]
        _add(client, batch_id, _items(range(700, 708), "r"))
        items = _all_items(client, batch_id, limit=1000)
        for item in items:
            assert client.post(f"/v1/jobs/{item['job_id']}/cancel").status_code == 200
        items = _all_items(client, batch_id, limit=1000)
        assert {item["status"] for item in items} == {"cancelled"}
        body = {"statuses": ["cancelled"]}
        _error(
            client.post(
                f"/v1/batches/{batch_id}/rerun", json={**body, "model": "gemini-2.0-flash-lite"}
            ),
            422,
            "model_retired",
        )
        _set_budget(paused_stack, tenant, "0.000000001")
        _error(client.post(f"/v1/batches/{batch_id}/rerun", json=body), 402, "budget_exceeded")
        assert _all_items(client, batch_id, limit=1000) == items
        _set_budget(paused_stack, tenant, "100")

        def rerun(_: int) -> httpx.Response:
            return client.post(f"/v1/batches/{batch_id}/rerun", json=body)

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(rerun, range(2)))
        assert [answer.status_code for answer in answers] == [202, 202]
        assert sum(answer.json()["rerun"] for answer in answers) == len(items)
        after = _all_items(client, batch_id, limit=1000)
        assert [item["reruns"] for item in after] == [1] * len(items)
        assert [item["status"] for item in after] == ["queued"] * len(items)
        jobs = _jobs(client, [item["job_id"] for item in after])
        assert [jobs[new["job_id"]]["retry_of"] for new in after] == [
            old["job_id"] for old in items
        ]
        # Leave nothing queued for the tests that start this stack's worker.
        assert client.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
