"""Calls of the batch API (and the items and jobs it made) shared by the batch API's
integration tests: create, add items, wait for the end, page items, read jobs, expect an error."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx

from tests.integration.helpers import scene_png

# A caption job capped at one output token has no room to answer (max_tokens_exhausted): a
# failure on demand, fixed by a re-run with a larger cap.
CUT = {"max_output_tokens": 1}


def _image(seed: int) -> str:
    data, _ = scene_png(seed, width=96, height=96, count=1)
    return base64.b64encode(data).decode()


def _create(client: httpx.Client, name: str, **fields: Any) -> httpx.Response:
    return client.post("/v1/batches", json={"name": name, "task": "caption", **fields})


def _add(client: httpx.Client, batch_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post(f"/v1/batches/{batch_id}/items", json={"items": items})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _items(seeds: range, prefix: str, **overrides: Any) -> list[dict[str, Any]]:
    return [
        {"key": f"{prefix}{seed}.png", "images": [{"data": _image(seed)}], **overrides}
        for seed in seeds
    ]


def _wait_done(client: httpx.Client, batch_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
        progress = batch["progress"]
        if progress["done"] == progress["items"]:
            return batch
        assert time.monotonic() < deadline, progress
        time.sleep(0.2)


def _all_items(client: httpx.Client, batch_id: str, limit: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"/v1/batches/{batch_id}/items", params=params).json()
        found.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def _jobs(client: httpx.Client, ids: list[str]) -> dict[str, dict[str, Any]]:
    page = client.get("/v1/jobs", params={"ids": ",".join(ids)}).json()
    assert page["missing"] == []
    return {job["id"]: job for job in page["jobs"]}


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code, body
    message: str = body["message"]
    return message
