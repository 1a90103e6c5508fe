"""Adding items to a batch (issue 19, part B) on the real stack, SQLite and PostgreSQL: images
as multipart parts, base64, URLs and sha256 refs; re-adding a key answers its job; a bad item
is rejected while the others are added; whole-call refusals store nothing; 50 parallel adds
of overlapping keys give every key exactly one item and one job."""

from __future__ import annotations

import base64
import json
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.integration.conftest import Stack, redis_db
from tests.integration.helpers import own_tenant, scene_png, wait_done
from tests.integration.imagehost import serve_png
from tests.integration.inprocess import InProcessApi, in_process_api
from tests.services import visionq_command

pytestmark = pytest.mark.integration
# The process stack's clients and the in-process app's (Starlette's is another httpx's).
Client = httpx.Client | TestClient
Response = Any


def _png(seed: int) -> bytes:
    return scene_png(seed, width=96, height=96, count=1)[0]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _create(client: Client, **fields: Any) -> str:
    body = {"name": f"intake-{uuid.uuid4().hex[:12]}", "task": "caption", **fields}
    response = client.post("/v1/batches", json=body)
    assert response.status_code == 201, response.text
    batch_id: str = response.json()["id"]
    return batch_id


def _add(client: Client, batch_id: str, items: list[dict[str, Any]]) -> Response:
    return client.post(f"/v1/batches/{batch_id}/items", json={"items": items})


def _added(client: Client, batch_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    response = _add(client, batch_id, items)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _by_key(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["key"]: item for item in body["items"]}


def _error(response: Response, status: int) -> str:
    assert response.status_code == status, response.text
    code: str = response.json()["error"]["code"]
    return code


@pytest.fixture(scope="module")
def image_url() -> Iterator[str]:
    """A PNG served on 127.0.0.2, the address the integration stack treats as public."""
    with serve_png(_png(90)) as host:
        yield f"{host.url}/scene.png"


def test_items_from_parts_base64_urls_and_sha256_refs(stack: Stack, image_url: str) -> None:
    """Every way to give an image makes a job as a single submit does; a sha256 ref reuses
    a stored image (counted as referenced, not received); adding a key again answers its
    job and does no image work; lookup finds keys and stored images."""
    with stack.client() as client:
        batch_id = _create(client)
        items = {
            "items": [
                {"key": "dir/a.png", "images": [{"part": 0}]},
                {"key": "dir/b.png", "images": [{"part": 1}], "prompt": "Name the shape."},
            ]
        }
        files = [
            ("image", ("a.png", _png(1), "image/png")),
            ("image", ("b.png", _png(2), "image/png")),
        ]
        response = client.post(
            f"/v1/batches/{batch_id}/items", data={"items": json.dumps(items)}, files=files
        )
        assert response.status_code == 200, response.text
        first = _by_key(response.json())
        assert {item["outcome"] for item in first.values()} == {"created"}
        a_sha = first["dir/a.png"]["images"][0]
        more = _by_key(
            _added(
                client,
                batch_id,
                [
                    {"key": "c", "images": [{"data": _b64(_png(3))}]},
                    {"key": "d", "images": [{"url": image_url}]},
                    {"key": "e", "images": [{"sha256": a_sha}], "options": {"cache": False}},
                ],
            )
        )
        assert {item["outcome"] for item in more.values()} == {"created"}
        jobs = {key: item["job_id"] for key, item in {**first, **more}.items()}
        for key, job_id in jobs.items():
            job = wait_done(client, job_id)
            assert job["status"] == "succeeded", (key, job)
            assert job["task"] == "caption"
        b_job = client.get(f"/v1/jobs/{jobs['dir/b.png']}").json()
        assert b_job["prompt"] == "Name the shape."
        e_job = client.get(f"/v1/jobs/{jobs['e']}").json()
        assert [image["sha256"] for image in e_job["inputs"]] == [a_sha]
        assert e_job["options"]["cache"] is False
        batch = client.get(f"/v1/batches/{batch_id}").json()
        assert (batch["item_count"], batch["images_received"], batch["images_referenced"]) == (
            5,
            4,
            1,
        )
        # Again: the same keys answer their jobs; nothing is uploaded, checked or created.
        again = _added(
            client,
            batch_id,
            [
                {"key": "dir/a.png", "images": [{"data": "not even base64"}]},
                {"key": "c", "images": [{"sha256": a_sha}]},
            ],
        )
        assert (again["created"], again["existing"], again["rejected"]) == (0, 2, 0)
        for item in again["items"]:
            assert item["outcome"] == "exists"
            assert item["job_id"] == jobs[item["key"]]
            assert item["status"] == "succeeded"
        batch = client.get(f"/v1/batches/{batch_id}").json()
        assert (batch["item_count"], batch["images_received"]) == (5, 4)
        found = client.post(
            f"/v1/batches/{batch_id}/lookup",
            json={"keys": ["c", "nope"], "sha256s": [a_sha, "0" * 64, "not-hex"]},
        )
        assert found.status_code == 200, found.text
        assert found.json() == {"existing": {"c": jobs["c"]}, "stored_sha256s": [a_sha]}
    # Another tenant's image is not theirs to reference, nor is the batch.
    with stack.client("globex") as other:
        assert _error(_add(other, batch_id, [{"key": "x", "images": [{"sha256": a_sha}]}]), 404)
        other_batch = _create(other)
        refused = _added(other, other_batch, [{"key": "x", "images": [{"sha256": a_sha}]}])
        assert refused["items"][0]["error"]["code"] == "image_not_stored"


def test_a_bad_item_is_rejected_with_the_single_submit_error(stack: Stack) -> None:
    """Each rejected item carries the code and message POST /v1/jobs answers for the same
    job; the good items of the call are added."""
    corrupt = _b64(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with stack.client() as client:
        batch_id = _create(client)
        body = _added(
            client,
            batch_id,
            [
                {"key": "good", "images": [{"data": _b64(_png(4))}]},
                {"key": "corrupt", "images": [{"data": corrupt}]},
                {"key": "options", "images": [{"data": _b64(_png(5))}],
                 "options": {"temperature": 99}},
                {"key": "unknown-ref", "images": [{"sha256": "f" * 64}]},
            ],
        )  # fmt: skip
        assert (body["created"], body["existing"], body["rejected"]) == (1, 0, 3)
        outcomes = _by_key(body)
        assert outcomes["good"]["outcome"] == "created"
        assert outcomes["unknown-ref"]["error"]["code"] == "image_not_stored"
        single = client.post("/v1/jobs", json={"task": "caption", "images": [{"data": corrupt}]})
        assert single.status_code == 422
        assert outcomes["corrupt"]["error"] == single.json()["error"]
        single = client.post(
            "/v1/jobs",
            json={"task": "caption", "images": [{"data": _b64(_png(5))}],
                  "options": {"temperature": 99}},
        )  # fmt: skip
        assert outcomes["options"]["error"] == single.json()["error"]
        assert client.get(f"/v1/batches/{batch_id}").json()["item_count"] == 1


def test_whole_call_refusals_store_nothing(stack: Stack) -> None:
    """A malformed call is refused as a whole (422, 404, 409, 415) and adds no item."""
    image = {"data": _b64(_png(6))}
    with stack.client() as client:
        batch_id = _create(client)
        too_many = [{"key": f"k{i}", "images": [{"sha256": "0" * 64}]} for i in range(501)]
        assert _error(_add(client, batch_id, too_many), 422) == "too_many_items"
        twice = [{"key": "k", "images": [image]}, {"key": "k", "images": [image]}]
        assert _error(_add(client, batch_id, twice), 422) == "duplicate_item_key"
        newline = [{"key": "a\nb", "images": [image]}]
        assert _error(_add(client, batch_id, newline), 422) == "invalid_item_key"
        part_in_json = [{"key": "p", "images": [{"part": 0}]}]
        assert _error(_add(client, batch_id, part_in_json), 422) == "invalid_request"
        missing_part = {"items": [{"key": "p", "images": [{"part": 1}]}]}
        response = client.post(
            f"/v1/batches/{batch_id}/items",
            data={"items": json.dumps(missing_part)},
            files=[("image", ("a.png", _png(6), "image/png"))],
        )
        assert _error(response, 422) == "invalid_request"
        text = client.post(
            f"/v1/batches/{batch_id}/items", content=b"x", headers={"content-type": "text/plain"}
        )
        assert _error(text, 415) == "unsupported_media_type"
        assert _error(_add(client, str(uuid.uuid4()), [{"key": "k", "images": [image]}]), 404) == (
            "batch_not_found"
        )
        assert _error(_add(client, "not-a-uuid", [{"key": "k", "images": [image]}]), 404) == (
            "batch_not_found"
        )
        assert client.get(f"/v1/batches/{batch_id}").json()["item_count"] == 0
        assert client.post(f"/v1/batches/{batch_id}/close").status_code == 200
        closed = _add(client, batch_id, [{"key": "k", "images": [image]}])
        assert _error(closed, 409) == "batch_closed"


def test_the_budget_refuses_the_whole_call(stack: Stack, database_url: str) -> None:
    """Items whose summed worst case is over the budget: 402 for the call, no job, no item."""
    tenant = f"batch-budget-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        visionq_command("budgets", "set", tenant, "--daily", "0.000001"),
        env=stack.env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with own_tenant(database_url, stack.api_url, tenant) as client:
        batch_id = _create(client)
        items = [{"key": f"k{i}", "images": [{"data": _b64(_png(10 + i))}]} for i in range(3)]
        assert _error(_add(client, batch_id, items), 402) == "budget_exceeded"
        assert client.get(f"/v1/batches/{batch_id}").json()["item_count"] == 0
        assert client.get("/v1/jobs").json()["jobs"] == []


def _add_retrying(client: httpx.Client, batch_id: str, items: list[dict[str, Any]]) -> Any:
    """An add retried on 429 and 503 (after Retry-After) as a client does."""
    for _ in range(50):
        response = _add(client, batch_id, items)
        if response.status_code not in (429, 503):
            assert response.status_code == 200, response.text
            return response.json()
        time.sleep(float(response.headers.get("retry-after", "1")))
    raise AssertionError("still refused after 50 tries")


def test_parallel_adds_of_overlapping_keys(stack: Stack, database_url: str) -> None:
    """50 adds at once, each of a random window of the keys 0..99: every key ends with
    exactly one item and one job, and every call answered each key with that job."""
    tenant = f"batch-parallel-{uuid.uuid4().hex[:8]}"
    images = {index: _b64(_png(200 + index)) for index in range(100)}
    rng = random.Random(19)
    windows = [range(start, start + 20) for start in (rng.randrange(0, 81) for _ in range(50))]
    windows[0], windows[1] = range(0, 20), range(80, 100)  # every key is added at least once
    with own_tenant(database_url, stack.api_url, tenant) as client:
        batch_id = _create(client, options={"cache": False})
    local = threading.local()
    clients: list[httpx.Client] = []

    def add(window: range) -> Any:
        if not hasattr(local, "client"):
            local.client = own_tenant(database_url, stack.api_url, tenant)
            clients.append(local.client)
        items = [{"key": f"k{i}", "images": [{"data": images[i]}]} for i in window]
        return _add_retrying(local.client, batch_id, items)

    try:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(add, windows))
    finally:
        for one in clients:
            one.close()
    job_of: dict[str, str] = {}
    created = 0
    for answer in answers:
        assert answer["rejected"] == 0, answer
        created += answer["created"]
        for item in answer["items"]:
            assert job_of.setdefault(item["key"], item["job_id"]) == item["job_id"], item
    assert created == len(job_of) == 100
    with own_tenant(database_url, stack.api_url, tenant) as client:
        items = client.get(f"/v1/batches/{batch_id}/items", params={"limit": 1000}).json()
        assert sorted(item["key"] for item in items["items"]) == sorted(job_of)
        assert {item["key"]: item["job_id"] for item in items["items"]} == job_of
        jobs: list[str] = []
        cursor = None
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/jobs", params=params).json()
            jobs += [job["id"] for job in page["jobs"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(jobs) == sorted(job_of.values())
        assert client.get(f"/v1/batches/{batch_id}").json()["item_count"] == 100


@pytest.fixture(scope="module")
def limits_api(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[InProcessApi]:
    """The app in process (no worker) with tight limits: a burst of 4 calls per key (one a
    10 s after), at most 5 unfinished jobs per tenant."""
    with in_process_api(
        Path(tmp_path_factory.mktemp("batch-limits")), redis_db(redis_url), ("acme",),
        submit_rate_per_s=0.1, submit_burst=4, max_active_jobs_per_tenant=5,
    ) as app:  # fmt: skip
        yield app


def test_a_call_is_one_submission_and_unfinished_jobs_are_capped(limits_api: InProcessApi) -> None:
    """The rate limit charges a call, not its items; items that would take the tenant past
    its unfinished jobs are refused as a whole (429 + Retry-After), and nothing is stored."""
    with limits_api.client("acme") as client:
        batch_id = _create(client, options={"cache": False})
        items = [{"key": f"k{i}", "images": [{"data": _b64(_png(30 + i))}]} for i in range(4)]
        assert _added(client, batch_id, items)["created"] == 4  # 4 jobs, one call
        more = [{"key": f"m{i}", "images": [{"data": _b64(_png(40 + i))}]} for i in range(2)]
        capped = _add(client, batch_id, more)
        assert _error(capped, 429) == "too_many_active_jobs"
        assert int(capped.headers["retry-after"]) >= 1
        assert client.get(f"/v1/batches/{batch_id}").json()["item_count"] == 4
        # Keys already added cost no active job: answered, not refused.
        assert _added(client, batch_id, items[:2])["existing"] == 2
        throttled = _add(client, batch_id, more[:1])
        assert _error(throttled, 429) == "rate_limited"
