"""Security: tenant isolation, keys, Idempotency-Key, abuse limits and image URLs (SSRF).

Routes that need no worker run in process (``api``: conftest.py, inprocess.py); a job the
worker finishes, and the race of one Idempotency-Key in the database, run against the
process stack on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.integration.conftest import Stack, redis_db
from tests.integration.helpers import scene_png, submit, wait_done
from tests.integration.imagehost import ImageHost, serve_png
from tests.integration.inprocess import InProcessApi, in_process_api
from tests.services import free_port
from visionq.cli.main import app as cli_app

pytestmark = pytest.mark.integration


# --- tenant isolation and keys ---------------------------------------------------------


def test_every_route_hides_other_tenants_jobs(stack: Stack) -> None:
    data, _ = scene_png(41)
    with stack.client("acme") as acme, stack.client("globex") as globex:
        job_id = submit(acme, data, task="segment", options={"cache": False}).json()["id"]
        job = wait_done(acme, job_id)
        assert job["status"] == "succeeded" and job["result"]["objects"]
        assert acme.get(f"/v1/jobs/{job_id}/masks/0.png").status_code == 200
        for method, path in [
            ("GET", f"/v1/jobs/{job_id}"),
            ("POST", f"/v1/jobs/{job_id}/cancel"),
            ("GET", f"/v1/jobs/{job_id}/annotated.png"),
            ("GET", f"/v1/jobs/{job_id}/masks/0.png"),
            ("GET", f"/v1/jobs/{job_id}/images/0"),
        ]:
            response = globex.request(method, path)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["code"] == "job_not_found"
        listed = globex.get("/v1/jobs", params={"limit": 200}).json()["jobs"]
        assert job_id not in [item["id"] for item in listed]
        assert acme.get(f"/v1/jobs/{job_id}/images/0").status_code == 200
        # The console's filters never reach past the tenant either.
        for query in ({"task": "segment"}, {"created_after": job["created_at"]}):
            listed = globex.get("/v1/jobs", params={"limit": 200, **query}).json()["jobs"]
            assert job_id not in [item["id"] for item in listed], query
        assert acme.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"  # untouched


def test_a_revoked_key_is_refused(api: InProcessApi, monkeypatch: pytest.MonkeyPatch) -> None:
    # The operator's commands (visionq keys ...), run in process on the app's database.
    for name in [name for name in os.environ if name.startswith("VISIONQ_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VISIONQ_DATABASE_URL", api.settings.database_url)

    def cli(*args: str) -> str:
        done = CliRunner().invoke(cli_app, ["keys", *args])
        assert done.exit_code == 0, done.output
        return done.output

    secret = cli("create", "short-lived", "--tenant", "acme").strip().splitlines()[-1]
    with api.client(None, Authorization=f"Bearer {secret}") as client:
        assert client.get("/v1/jobs").status_code == 200
        key_id = next(line.split()[0] for line in cli("list").splitlines() if "short-lived" in line)
        cli("revoke", key_id)
        refused = client.get("/v1/jobs")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"


# --- Idempotency-Key -------------------------------------------------------------------


def _post(client: httpx.Client, image: bytes, key: str, **fields: object) -> httpx.Response:
    body = {"task": "caption", "images": [{"data": base64.b64encode(image).decode()}], **fields}
    return client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})


def test_idempotency_key_returns_the_same_job(api: InProcessApi) -> None:
    image, _ = scene_png(42)
    key = f"order-{time.time_ns()}"
    with api.client("acme") as acme, api.client("globex") as globex:
        first = _post(acme, image, key, prompt="one")
        again = _post(acme, image, key, prompt="one")
        assert first.status_code == again.status_code == 202
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        other_body = _post(acme, image, key, prompt="two")
        assert other_body.status_code == 422
        assert other_body.json()["error"]["code"] == "idempotency_key_reused"
        # Keys are per tenant: another tenant's identical key is a new job.
        theirs = _post(globex, image, key, prompt="one")
        assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"]
        bad = _post(acme, image, "has spaces")
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid_idempotency_key"


def test_concurrent_requests_with_one_key_make_one_job(stack: Stack) -> None:
    image, _ = scene_png(43)
    key = f"burst-{time.time_ns()}"
    with stack.client("acme") as acme, ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda _: _post(acme, image, key), range(10)))
    assert {r.status_code for r in responses} == {202}, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1


# --- abuse limits ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def limits_api(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[InProcessApi]:
    """The app in process (no worker) with tight abuse limits: 2 submissions/s with a burst
    of 4 per key, at most 4 unfinished jobs per tenant."""
    with in_process_api(
        Path(tmp_path_factory.mktemp("limits")), redis_db(redis_url), ("acme",),
        submit_rate_per_s=2, submit_burst=4, max_active_jobs_per_tenant=4,
    ) as app:  # fmt: skip
        yield app


def test_submit_rate_limit_and_active_job_cap(limits_api: InProcessApi) -> None:
    image, _ = scene_png(44)
    with limits_api.client("acme") as acme:
        codes = [submit(acme, image, task="caption").status_code for _ in range(4)]
        assert codes == [202] * 4  # the burst
        throttled = submit(acme, image, task="caption")
        assert throttled.status_code == 429
        assert throttled.json()["error"]["code"] == "rate_limited"
        assert int(throttled.headers["retry-after"]) >= 1
        time.sleep(int(throttled.headers["retry-after"]))
        # The rate allows it now, but 4 jobs are waiting (no worker runs): the cap says no.
        capped = submit(acme, image, task="caption")
        assert capped.status_code == 429
        assert capped.json()["error"]["code"] == "too_many_active_jobs"
        assert len(acme.get("/v1/jobs").json()["jobs"]) == 4  # nothing else was stored


# --- image URLs and SSRF ---------------------------------------------------------------


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[ImageHost, ImageHost]]:
    """A forbidden host on 127.0.0.1 and an allowed one on 127.0.0.2 (same port)."""
    png, _ = scene_png(45, 320, 240)
    port = free_port()
    with (
        serve_png(png, "127.0.0.1", port) as forbidden,
        serve_png(png, "127.0.0.2", port) as allowed,
    ):
        yield forbidden, allowed


def _by_url(client: httpx.Client, url: str) -> httpx.Response:
    return client.post("/v1/jobs", json={"task": "caption", "images": [{"url": url}]})


def test_an_image_url_of_an_allowed_host_is_fetched(
    stack: Stack, hosts: tuple[ImageHost, ImageHost]
) -> None:
    forbidden, allowed = hosts
    with stack.client("acme") as acme:
        response = _by_url(acme, f"{allowed.url}/scene.png")
        assert response.status_code == 202, response.text
        job = wait_done(acme, response.json()["id"])
        assert job["status"] == "succeeded"
        assert job["inputs"][0]["width"] == 320
    assert allowed.hits >= 1 and forbidden.hits == 0


def test_ssrf_attempts_never_reach_internal_hosts(
    api: InProcessApi, hosts: tuple[ImageHost, ImageHost]
) -> None:
    forbidden, allowed = hosts
    port = forbidden.port
    attempts = [
        f"http://127.0.0.1:{port}/x.png",
        f"http://localhost:{port}/x.png",
        f"http://2130706433:{port}/x.png",
        f"http://0177.0.0.1:{port}/x.png",
        f"http://0x7f000001:{port}/x.png",
        f"http://127.1:{port}/x.png",
        f"http://[::1]:{port}/x.png",
        f"http://[::ffff:127.0.0.1]:{port}/x.png",
        f"http://[::ffff:7f00:1]:{port}/x.png",
        f"http://0.0.0.0:{port}/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x.png",
        "http://192.168.1.1/x.png",
        "http://100.64.0.1/x.png",
        "file:///etc/passwd",
        "ftp://example.com/x.png",
        "gopher://127.0.0.1:70/x",
        f"http://user:pw@127.0.0.2:{port}/x.png",
        # An allowed host redirecting to a forbidden one: refused at the hop.
        f"{allowed.url}/redirect?to=http://127.0.0.1:{port}/x.png",
    ]
    with api.client("acme") as acme:
        before = len(acme.get("/v1/jobs", params={"limit": 200}).json()["jobs"])
        for url in attempts:
            response = _by_url(acme, url)
            assert 400 <= response.status_code < 500, (url, response.status_code, response.text)
            assert response.json()["error"]["code"].startswith("url_"), (url, response.text)
        after = len(acme.get("/v1/jobs", params={"limit": 200}).json()["jobs"])
    assert forbidden.hits == 0
    assert after == before  # no job row for any of them


def test_an_image_item_needs_exactly_one_source(api: InProcessApi) -> None:
    with api.client("acme") as acme:
        both = {"data": "aGVsbG8=", "url": "http://127.0.0.2/x.png"}
        for item in ({}, both):
            body = json.dumps({"task": "caption", "images": [item]})
            response = acme.post("/v1/jobs", content=body,
                                 headers={"content-type": "application/json"})  # fmt: skip
            assert response.status_code == 422
            assert "exactly one of data" in response.json()["error"]["message"]
