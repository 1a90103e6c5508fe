"""The batch API on the real stack: create by name, progress counts, the export, close, re-run."""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.integration.batch_api_calls import (
    CUT,
    _add,
    _all_items,
    _create,
    _error,
    _items,
    _jobs,
    _wait_done,
)
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def test_create_is_idempotent_by_name(stack: Stack) -> None:
    name = f"idem-{stack.name}"
    with stack.client() as client:
        first = _create(client, name, prompt="Short.", expected_items=10)
        assert first.status_code == 201, first.text
        batch = first.json()
        assert batch["state"] == "open" and batch["item_count"] == 0
        again = _create(client, name, prompt="Short.", expected_items=99)
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == batch["id"]
        # A resumed run's new count of inputs replaces the old one (the estimate follows it).
        assert again.json()["expected_items"] == 99
        assert client.get(f"/v1/batches/{batch['id']}").json()["expected_items"] == 99
        message = _error(_create(client, name, prompt="Long."), 409, "batch_name_taken")
        assert batch["id"] in message
        # Every default that tells batches apart is named (priority is one of them).
        assert "schema, webhook_url and priority to resume it" in message
        listed = client.get("/v1/batches", params={"name": name}).json()
        assert [found["id"] for found in listed["batches"]] == [batch["id"]]
        assert listed["batches"][0]["progress"] is None
        # Another key never sees it, and may use the name.
        with stack.client("globex") as other:
            assert other.get("/v1/batches", params={"name": name}).json()["batches"] == []
            _error(other.get(f"/v1/batches/{batch['id']}"), 404, "batch_not_found")
            assert _create(other, name, prompt="Long.").status_code == 201
        _error(_create(client, f"{name}-x", task="nonsense"), 422, "unknown_task")
        _error(_create(client, f"{name}-y", options={"nope": 1}), 422, "invalid_options")
        _error(client.get("/v1/batches/not-a-batch"), 404, "batch_not_found")
        _error(client.get("/v1/batches", params={"cursor": "junk"}), 400, "invalid_cursor")
        # An ask batch may leave the question to each item.
        assert _create(client, f"{name}-ask", task="ask").status_code == 201


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _check_row(row: dict[str, Any], job: dict[str, Any]) -> None:
    """An export record is its job, field by field."""
    assert row["status"] == job["status"] and row["task"] == job["task"]
    assert row["model"] == job["model"] and row["result"] == job["result"]
    assert row["error"] == job["error"]
    assert row["cost_usd"] == job["cost_usd"]
    assert row["estimate_max_usd"] == job["estimate"]["cost_usd"]["max"]
    usage = job["usage"] or {}
    for name in ("prompt_tokens", "candidates_tokens", "thoughts_tokens", "total_tokens"):
        assert row["usage"][name] == usage.get(name), name
    assert _when(row["created_at"]) == _when(job["created_at"])
    assert _when(row["finished_at"]) == _when(job["finished_at"])


def _csv_record(record: dict[str, str]) -> dict[str, Any]:
    """A CSV row read back into the JSON Lines record's shape."""

    def number(name: str) -> int | None:
        return int(record[name]) if record[name] else None

    return {
        "key": record["key"],
        "job_id": record["job_id"],
        "status": record["status"],
        "task": record["task"],
        "model": record["model"],
        "result": json.loads(record["result_json"]) if record["result_json"] else None,
        "error": (
            {"code": record["error_code"], "message": record["error_message"]}
            if record["error_code"]
            else None
        ),
        "usage": {
            name: number(name)
            for name in ("prompt_tokens", "candidates_tokens", "thoughts_tokens", "total_tokens")
        },
        "cost_usd": record["cost_usd"] or None,
        "estimate_max_usd": record["estimate_max_usd"] or None,
        "reruns": int(record["reruns"]),
        "created_at": record["created_at"] or None,
        "finished_at": record["finished_at"] or None,
    }


def test_progress_export_items_and_rerun(stack: Stack) -> None:
    name = f"run-{stack.name}"
    with stack.client() as client:
        batch = _create(client, name, expected_items=12).json()
        batch_id = batch["id"]
        # Keys CSV must quote; 8 that succeed and 4 cut at one output token (they fail).
        good = _items(range(500, 508), 'photo, "q" ')
        cut = _items(range(508, 512), "cut-", options=CUT)
        added = _add(client, batch_id, good[:5])
        assert added["created"] == 5
        added = _add(client, batch_id, good[5:] + cut)
        assert (added["created"], added["existing"], added["rejected"]) == (7, 0, 0)
        done = _wait_done(client, batch_id)
        progress = done["progress"]
        items = _all_items(client, batch_id, limit=5)
        assert [item["key"] for item in items] == [item["key"] for item in good + cut]
        jobs = _jobs(client, [item["job_id"] for item in items])
        # Progress counts are the jobs' statuses.
        statuses = [jobs[item["job_id"]]["status"] for item in items]
        for status in ("queued", "running", "succeeded", "failed", "cancelled"):
            assert progress["counts"][status] == statuses.count(status), status
        assert progress["counts"]["succeeded"] == 8 and progress["counts"]["failed"] == 4
        assert {jobs[item["job_id"]]["error"]["code"] for item in items[8:]} == {
            "max_tokens_exhausted"
        }
        total = sum(Decimal(job["cost_usd"] or 0) for job in jobs.values())
        assert Decimal(progress["cost_usd"]) == total
        tokens = sum((job["usage"] or {}).get("total_tokens") or 0 for job in jobs.values())
        assert progress["tokens"]["total"] == tokens
        assert progress["eta_s"] == 0.0
        estimate = sum(Decimal(job["estimate"]["cost_usd"]["max"]) for job in jobs.values())
        assert Decimal(progress["estimate_usd"]["max"]) >= estimate  # each rounded up

        # The export, row by row against the jobs, in both formats.
        response = client.get(f"/v1/batches/{batch_id}/results")
        assert response.headers["content-type"].startswith("application/x-ndjson")
        assert name in response.headers["content-disposition"]
        rows = [json.loads(line) for line in response.text.splitlines()]
        assert [row["key"] for row in rows] == [item["key"] for item in items]
        for row, item in zip(rows, items, strict=True):
            assert row["job_id"] == item["job_id"] and row["reruns"] == 0
            _check_row(row, jobs[item["job_id"]])
        response = client.get(f"/v1/batches/{batch_id}/results", params={"format": "csv"})
        assert response.headers["content-type"].startswith("text/csv")
        records = list(csv.DictReader(io.StringIO(response.text, newline="")))
        assert [_csv_record(record) for record in records] == rows
        failed = client.get(f"/v1/batches/{batch_id}/results", params={"status": "failed"})
        assert [json.loads(line)["key"] for line in failed.text.splitlines()] == [
            item["key"] for item in items[8:]
        ]
        _error(
            client.get(f"/v1/batches/{batch_id}/results", params={"format": "xml"}),
            422,
            "invalid_request",
        )

        # Re-run the cut items with room to answer: new jobs, the old ones kept.
        rerun = client.post(
            f"/v1/batches/{batch_id}/rerun",
            json={"error_codes": ["max_tokens_exhausted"], "options": {"max_output_tokens": 2048}},
        )
        assert rerun.status_code == 202, rerun.text
        assert rerun.json()["rerun"] == 4
        again = client.post(f"/v1/batches/{batch_id}/rerun", json={})
        assert again.json()["rerun"] == 0  # the new jobs are queued or done, not failed
        done = _wait_done(client, batch_id)
        after = _all_items(client, batch_id, limit=1000)
        assert after[:8] == items[:8]
        new_jobs = _jobs(client, [item["job_id"] for item in after[8:]])
        for old, new in zip(items[8:], after[8:], strict=True):
            assert new["reruns"] == 1 and new["job_id"] != old["job_id"]
            job = new_jobs[new["job_id"]]
            assert job["status"] == "succeeded" and job["retry_of"] == old["job_id"]
            assert job["options"]["max_output_tokens"] == 2048
        old_jobs = _jobs(client, [item["job_id"] for item in items[8:]])
        assert all(job["status"] == "failed" and job["attempts"] for job in old_jobs.values())
        counts = done["progress"]["counts"]
        assert (counts["succeeded"], counts["failed"]) == (12, 0)
        # The cost so far counts the replaced jobs too.
        every = [*jobs.values(), *new_jobs.values()]
        assert Decimal(done["progress"]["cost_usd"]) == sum(
            Decimal(job["cost_usd"] or 0) for job in every
        )
        # The whole estimate: the latest jobs' estimates, plus what the replaced ones cost
        # (their estimates leave it; each job's bound is rounded up to a nano-dollar).
        latest = [*(jobs[item["job_id"]] for item in after[:8]), *new_jobs.values()]
        spent = sum(Decimal(job["cost_usd"] or 0) for job in old_jobs.values())
        bound = sum(Decimal(job["estimate"]["cost_usd"]["max"]) for job in latest) + spent
        whole = Decimal(done["progress"]["estimate_usd"]["max"])
        assert bound <= whole <= bound + Decimal("0.000000001") * len(latest)
        # Close: no more items, re-runs still allowed.
        closed = client.post(f"/v1/batches/{batch_id}/close")
        assert closed.status_code == 200 and closed.json()["state"] == "closed"
        assert client.post(f"/v1/batches/{batch_id}/close").json()["state"] == "closed"
        refused = client.post(f"/v1/batches/{batch_id}/items", json={"items": cut[:1]})
        _error(refused, 409, "batch_closed")
        assert client.post(f"/v1/batches/{batch_id}/rerun", json={}).status_code == 202
        listed = client.get("/v1/batches", params={"state": "closed", "name": name}).json()
        assert [found["id"] for found in listed["batches"]] == [batch_id]


def test_concurrent_creates_of_one_name_make_one_batch(stack: Stack) -> None:
    name = f"race-{stack.name}"

    def create(_: int) -> httpx.Response:
        with stack.client() as client:
            return _create(client, name, prompt="Same.")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(create, range(8)))
    assert sorted(answer.status_code for answer in answers) == [200] * 7 + [201]
    assert len({answer.json()["id"] for answer in answers}) == 1
