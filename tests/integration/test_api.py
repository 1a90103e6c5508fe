"""The HTTP contract: auth, tenancy, errors, listing and cancellation.

Routes that need no worker run in process (``api``: conftest.py, inprocess.py); the rest
run against the process stack on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.conftest import Stack
from tests.integration.helpers import jobs_queue_length, own_tenant, scene_png, submit, wait_done
from tests.integration.inprocess import InProcessApi

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "unauthorized"),
        ({"Authorization": "Bearer vq_wrong"}, "invalid_api_key"),
        ({"Authorization": "Basic abc"}, "unauthorized"),
    ],
)
def test_requests_without_a_valid_key_are_401(
    api: InProcessApi, headers: dict[str, str], code: str
) -> None:
    with api.client(None) as client:
        response = client.get("/v1/jobs", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response.headers["www-authenticate"] == "Bearer"


def _png_header_only() -> bytes:
    data, _ = scene_png(32)
    return data[:40]


@pytest.mark.parametrize(
    ("fields", "image", "status", "code"),
    [
        (
            {"task": "caption"},
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",  # GIFs are taken; this one has no image
            422,
            "corrupt_image",
        ),
        ({"task": "caption"}, b"%PDF-1.4 not an image", 415, "unsupported_media_type"),
        ({"task": "caption"}, "header-only-png", 422, "corrupt_image"),
        ({"task": "caption"}, b"", 422, "empty_image"),
        ({"task": "paint"}, "png", 422, "unknown_task"),
        ({}, "png", 422, "missing_task"),
        ({"task": "ask"}, "png", 422, "missing_prompt"),
        ({"task": "classify", "labels": "just-one"}, "png", 422, "missing_labels"),
        ({"task": "caption", "options": {"temprature": 1}}, "png", 422, "invalid_options"),
        ({"task": "caption", "options": {"temperature": 9}}, "png", 422, "invalid_options"),
        ({"task": "caption", "model": "bad model!"}, "png", 422, "invalid_model"),
        ({"task": "caption", "colour": "red"}, "png", 422, "invalid_request"),
    ],
)
def test_bad_multipart_input_is_a_4xx_with_code(
    api: InProcessApi, fields: dict[str, object], image: bytes | str, status: int, code: str
) -> None:
    if image == "png":
        image = scene_png(33)[0]
    elif image == "header-only-png":
        image = _png_header_only()
    assert isinstance(image, bytes)
    with api.client() as client:
        before = client.get("/v1/jobs?limit=200").json()["jobs"]
        response = submit(client, image, **fields)
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        assert response.json()["error"]["message"]
        # Nothing is created for a refused request.
        assert client.get("/v1/jobs?limit=200").json()["jobs"] == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"task": "caption", "images": []}, 422, "invalid_request"),
        ({"task": "caption", "images": [{"data": "%%%not base64%%%"}]}, 422, "invalid_base64"),
        ({"task": "caption"}, 422, "invalid_request"),
        ([1, 2, 3], 422, "invalid_request"),
    ],
)
def test_bad_json_input_is_a_4xx_with_code(
    api: InProcessApi, body: object, status: int, code: str
) -> None:
    with api.client() as client:
        response = client.post("/v1/jobs", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_malformed_bodies(api: InProcessApi) -> None:
    with api.client() as client:
        not_json = client.post(
            "/v1/jobs", content=b"{oops", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 422
        assert not_json.json()["error"]["code"] == "invalid_request"
        wrong_type = client.post("/v1/jobs", content=b"x", headers={"content-type": "text/plain"})
        assert wrong_type.status_code == 415
        assert client.get("/v1/jobs/does-not-exist").status_code == 404
        assert client.get("/v1/jobs?cursor=garbage").json()["error"]["code"] == "invalid_cursor"
        assert client.get("/v1/jobs?status=lost").status_code == 422


def test_listing_is_newest_first_with_cursor_and_status_filter(stack: Stack) -> None:
    data, _ = scene_png(34)
    with own_tenant(stack.env["VISIONQ_DATABASE_URL"], stack.api_url, "listing") as client:
        ids = [submit(client, data, task="caption").json()["id"] for _ in range(5)]
        for job_id in ids:
            wait_done(client, job_id)
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, "status": "succeeded"} | ({"cursor": cursor} if cursor else {})
            page = client.get("/v1/jobs", params=params).json()
            assert len(page["jobs"]) <= 2
            assert all(job["status"] == "succeeded" for job in page["jobs"])
            seen += [job["id"] for job in page["jobs"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert seen == list(reversed(ids))
    assert len(seen) == len(set(seen))


def _queue_length(stack: Stack) -> int:
    return jobs_queue_length(stack.env["VISIONQ_REDIS_URL"])


def test_cancelled_queued_job_never_runs(paused_stack: Stack) -> None:
    data, _ = scene_png(35)
    with paused_stack.client() as client:
        job_id = submit(client, data, task="caption").json()["id"]
        cancelled = client.post(f"/v1/jobs/{job_id}/cancel").json()
        assert cancelled["status"] == "cancelled"
        assert _queue_length(paused_stack) >= 1
        paused_stack.start_worker()
        deadline = time.monotonic() + 30
        while _queue_length(paused_stack) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _queue_length(paused_stack) == 0
        time.sleep(0.5)  # let the worker finish handling the message it took
        job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled"
    assert job["attempt_count"] == 0 and job["attempts"] == [] and job["result"] is None


def test_cancelled_running_job_discards_its_late_result(paused_stack: Stack) -> None:
    if paused_stack.worker is None:
        paused_stack.start_worker()
    data, _ = scene_png(36)
    with paused_stack.client() as client:
        job_id = submit(client, data, task="caption").json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
        # The emulator answers after 3 s; wait for the attempt to close.
        deadline = time.monotonic() + 30
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["attempts"] and job["attempts"][-1]["finished_at"]:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # Cancelling an ended job changes nothing.
        again = client.post(f"/v1/jobs/{job_id}/cancel").json()
    assert job["status"] == "cancelled" and job["result"] is None and job["usage"] is None
    assert job["attempts"][-1]["outcome"] == "discarded"
    assert again["status"] == "cancelled"


def test_annotated_png_only_for_succeeded_detect_jobs(stack: Stack) -> None:
    data, _ = scene_png(37)
    with stack.client() as client:
        caption = submit(client, data, task="caption").json()["id"]
        wait_done(client, caption)
        response = client.get(f"/v1/jobs/{caption}/annotated.png")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "no_annotation"
        detect = submit(client, data, task="detect").json()["id"]
        wait_done(client, detect)
        png = client.get(f"/v1/jobs/{detect}/annotated.png")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG")
    with stack.client("globex") as other:
        assert other.get(f"/v1/jobs/{detect}/annotated.png").status_code == 404


def test_annotated_png_of_a_job_not_finished(paused_stack: Stack) -> None:
    if paused_stack.worker is not None:
        paused_stack.worker.stop()
        paused_stack.worker = None
    data, _ = scene_png(38)
    with paused_stack.client() as client:
        job_id = submit(client, data, task="detect").json()["id"]
        response = client.get(f"/v1/jobs/{job_id}/annotated.png")
        client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_not_finished"


def test_hostile_inputs_are_4xx(api: InProcessApi) -> None:
    import base64 as b64
    import json

    data, _ = scene_png(39)
    naive = b64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00", "x"]).encode()).decode()
    with api.client() as client:
        assert client.get(f"/v1/jobs?cursor={naive}").json()["error"]["code"] == "invalid_cursor"
        assert client.get("/v1/jobs/%00").status_code == 404
        assert client.post("/v1/jobs/%00/cancel").status_code == 404
        nul = submit(client, data, task="ask", prompt="a\x00b")
        assert nul.status_code == 422 and nul.json()["error"]["code"] == "invalid_text"
        remote = submit(
            client, data, task="custom", prompt="x", schema={"$ref": "http://127.0.0.1:9/x"}
        )
        assert remote.status_code == 422 and remote.json()["error"]["code"] == "invalid_schema"
        many = submit(client, [data] * 17, task="ask", prompt="x")
        assert many.status_code == 422 and many.json()["error"]["code"] == "too_many_images"


def test_chunked_body_over_the_limit_is_413(stack: Stack) -> None:
    """No Content-Length: the limit is enforced while reading, not after spooling it all."""
    limit = 200 * 1024 * 1024
    boundary = "visionqboundary"

    def body() -> Iterator[bytes]:
        field = 'Content-Disposition: form-data; name="task"'
        yield f"--{boundary}\r\n{field}\r\n\r\ncaption\r\n".encode()
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        chunk = b"\0" * (1024 * 1024)
        for _ in range(limit // len(chunk) + 8):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    with stack.client() as client:
        response = client.post(
            "/v1/jobs", content=body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )  # fmt: skip
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"


def test_many_concurrent_submissions_are_all_accepted(stack: Stack) -> None:
    # 48 at once is more than the API's connection pool (5 + 10 overflow): each request
    # must hold at most one pooled connection at a time, or they deadlock until the pool's
    # 30 s timeout and fail with 500. Large images keep the requests in flight together.
    data, _ = scene_png(77, 1600, 1200)

    def one(index: int) -> int:
        with stack.client("acme") as client:
            return submit(client, data, task="caption", prompt=f"#{index}").status_code

    with ThreadPoolExecutor(48) as pool:
        codes = list(pool.map(one, range(48)))
    assert codes == [202] * 48
