"""The ``priority`` field (issue 23): 0..9 on POST /v1/jobs (JSON and multipart) and on batch
create (its jobs get it), shown on jobs and batches, default VISIONQ_DEFAULT_PRIORITY, a 422
in the one error shape when out of range; the job waits in its
tenant's fair-share set at that priority and a run_next token (no job id) is queued. In
process, on the real Redis (no worker)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.integration.conftest import redis_db
from tests.integration.helpers import scene_png
from tests.integration.inprocess import InProcessApi, in_process_api
from visionq.models.broker import JOBS_QUEUE

pytestmark = pytest.mark.integration

# kombu's Redis transport keeps priority 9 messages in a list of their own.
TOKENS_LIST = f"{JOBS_QUEUE}\x06\x169"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[InProcessApi]:
    with in_process_api(
        Path(tmp_path_factory.mktemp("priority")), redis_db(redis_url), ("acme", "globex"),
        default_priority=4,
    ) as app:  # fmt: skip
        yield app


def _image(seed: int) -> str:
    data, _ = scene_png(seed, width=96, height=96, count=1)
    return base64.b64encode(data).decode()


def _submit(client: httpx.Client, seed: int, **fields: Any) -> httpx.Response:
    body = {"task": "caption", "images": [{"data": _image(seed)}], "options": {"cache": False}}
    return client.post("/v1/jobs", json=body | fields)


def _waiting(api: InProcessApi, tenant: str) -> dict[str, int]:
    """The tenant's waiting jobs and their priorities, read from the fair-share set."""
    client = redis.Redis.from_url(api.settings.redis_url)
    scores = client.zrange(f"visionq:{{fair}}:q:{tenant}", 0, -1, withscores=True)
    return {job.decode(): 9 - int(score) // 2**40 for job, score in scores}


def _error(response: httpx.Response, code: str = "invalid_request") -> str:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and set(error) >= {"code", "message"}
    return str(error["message"])


def test_a_job_waits_at_its_priority_in_its_tenants_set(api: InProcessApi) -> None:
    tokens = redis.Redis.from_url(api.settings.redis_url)
    before = tokens.llen(TOKENS_LIST)
    with api.client("globex") as client:
        high = _submit(client, 1, priority=9).json()
        default = _submit(client, 2).json()
        low = _submit(client, 3, priority=0).json()
        assert client.get(f"/v1/jobs/{high['id']}").json()["priority"] == 9
    assert (high["priority"], default["priority"], low["priority"]) == (9, 4, 0)
    assert _waiting(api, "globex") == {high["id"]: 9, default["id"]: 4, low["id"]: 0}
    assert tokens.llen(TOKENS_LIST) == before + 3  # one token per job, naming none


def test_priority_out_of_range_is_a_422(api: InProcessApi) -> None:
    with api.client() as client:
        for bad in (10, -1, "high", 2.5, True):
            assert "priority" in _error(_submit(client, 4, priority=bad))
        assert "priority" in _error(client.post("/v1/batches", json={
            "name": "bad", "task": "caption", "priority": 11,
        }))  # fmt: skip


def test_the_multipart_form_takes_priority(api: InProcessApi) -> None:
    data, _ = scene_png(5, width=96, height=96, count=1)
    with api.client() as client:

        def post(priority: str) -> httpx.Response:
            files = {"image": ("a.png", data, "image/png")}
            form = {"task": "caption", "priority": priority, "options": '{"cache": false}'}
            return client.post("/v1/jobs", data=form, files=files)

        assert post("7").json()["priority"] == 7
        message = _error(post("12"))
        assert "0 to 9" in message
        for loose in ("x", "0_5", "+5", " 5", "5 ", "\u0665", "05", ""):
            _error(post(loose))  # the JSON field is strict: so is the form


def test_a_batch_gives_its_priority_to_its_jobs(api: InProcessApi) -> None:
    with api.client() as client:
        batch = client.post(
            "/v1/batches", json={"name": "urgent", "task": "caption", "priority": 8}
        ).json()
        assert batch["priority"] == 8
        plain = client.post("/v1/batches", json={"name": "plain", "task": "caption"}).json()
        assert plain["priority"] == 4
        items = [{"key": f"k{n}", "images": [{"data": _image(10 + n)}]} for n in range(3)]
        added = client.post(f"/v1/batches/{batch['id']}/items", json={"items": items})
        assert added.status_code == 200, added.text
        page = client.get(f"/v1/batches/{batch['id']}/items").json()
        job_ids = [item["job_id"] for item in page["items"]]
        assert [client.get(f"/v1/jobs/{i}").json()["priority"] for i in job_ids] == [8, 8, 8]
    waiting = _waiting(api, "acme")
    assert all(waiting[job_id] == 8 for job_id in job_ids)


def test_cancelling_takes_queued_jobs_out_of_the_fair_share_sets(api: InProcessApi) -> None:
    # Left there, a cancelled batch's entries would take stride turns from the tenant's
    # live jobs (each popped, sent and skipped by the claim) until they drained.
    with api.client("globex") as client:
        job = _submit(client, 20).json()
        batch = client.post("/v1/batches", json={"name": "gone", "task": "caption"}).json()
        items = [{"key": f"c{n}", "images": [{"data": _image(30 + n)}]} for n in range(3)]
        added = client.post(f"/v1/batches/{batch['id']}/items", json={"items": items})
        assert added.status_code == 200, added.text
        page = client.get(f"/v1/batches/{batch['id']}/items").json()
        batch_jobs = {item["job_id"] for item in page["items"]}
        assert {job["id"], *batch_jobs} <= set(_waiting(api, "globex"))
        assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
        assert job["id"] not in _waiting(api, "globex")
        assert client.post(f"/v1/batches/{batch['id']}/cancel").status_code == 200
    assert not batch_jobs & set(_waiting(api, "globex"))
