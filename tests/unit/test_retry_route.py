"""POST /v1/jobs/{id}/retry in process (issue 17): a retry is admitted like a submit (the
rate limit applies to it), and a job whose images are gone is a 410, not a 500."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from tests.services import redis_server
from visionq.api.app import create_app
from visionq.models.blobs import BlobStore
from visionq.models.db import make_engine, make_session_factory
from visionq.models.keys import create_key
from visionq.models.migrate import upgrade
from visionq.models.settings import Settings


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def _api(tmp_path: Path, redis_url: str, **overrides: Any) -> tuple[TestClient, Settings]:
    settings = Settings(data_dir=tmp_path, redis_url=redis_url, gemini_api_key=None, **overrides)
    # Key ids restart at 1 in each test's database: the submit limiter starts afresh too.
    redis.Redis.from_url(redis_url).flushdb()
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    with make_session_factory(engine).begin() as session:
        secret = create_key(session, name="t", tenant="acme").secret
    engine.dispose()
    client = TestClient(create_app(settings), headers={"Authorization": f"Bearer {secret}"})
    return client, settings


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(out, "PNG")
    return out.getvalue()


def _cancelled_job(api: TestClient) -> dict[str, Any]:
    submitted = api.post(
        "/v1/jobs", data={"task": "caption"}, files=[("image", ("a.png", _png(), "image/png"))]
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    cancelled: dict[str, Any] = api.post(f"/v1/jobs/{job_id}/cancel").json()
    assert cancelled["status"] == "cancelled"
    return cancelled


def test_a_retry_is_refused_by_the_submit_rate_limit(tmp_path: Path, redis_url: str) -> None:
    api, _ = _api(tmp_path, redis_url, submit_rate_per_s=0.001, submit_burst=1)
    with api:
        job = _cancelled_job(api)  # took the one submit the burst allows
        refused = api.post(f"/v1/jobs/{job['id']}/retry")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"


def test_a_retry_of_a_job_whose_images_are_gone_is_410(tmp_path: Path, redis_url: str) -> None:
    api, settings = _api(tmp_path, redis_url)
    with api:
        job = _cancelled_job(api)
        retried = api.post(f"/v1/jobs/{job['id']}/retry")
        assert retried.status_code == 202 and retried.json()["retry_of"] == job["id"]
        api.post(f"/v1/jobs/{retried.json()['id']}/cancel")
        store = BlobStore(settings.blob_dir)
        Path(store._path(job["inputs"][0]["sha256"])).unlink()
        gone = api.post(f"/v1/jobs/{job['id']}/retry")
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "job_inputs_gone"
    assert "submit the images again" in gone.json()["error"]["message"]


def test_the_openapi_document_describes_the_retry() -> None:
    operation = create_app(Settings()).openapi()["paths"]["/v1/jobs/{job_id}/retry"]["post"]
    assert set(operation["responses"]) == {
        "202", "400", "401", "402", "404", "405", "409", "410", "413", "422", "429", "503",
        "507",
    }  # fmt: skip
    headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
    assert headers == ["Idempotency-Key", "X-Request-ID"]
    assert operation["security"] == [{"HTTPBearer": []}]


def _forget_job(settings: Settings, job_id: str) -> None:
    """What retention does to an old finished job: its rows and its images gone."""
    engine = make_engine(settings.database_url)
    with make_session_factory(engine).begin() as session:
        for table in ("idempotency_keys", "attempts", "job_inputs"):
            session.execute(text(f"DELETE FROM {table} WHERE job_id = :id"), {"id": job_id})
        session.execute(text("DELETE FROM jobs WHERE id = :id"), {"id": job_id})
    engine.dispose()


def test_a_repeated_retry_returns_its_job_after_the_job_retried_is_gone(
    tmp_path: Path, redis_url: str
) -> None:
    """The Idempotency-Key is looked up before the job retried: after gc removed that job
    (or its images), a rerun gets the retry it already made, not a 404 or 410."""
    api, settings = _api(tmp_path, redis_url)
    with api:
        job = _cancelled_job(api)
        key = {"Idempotency-Key": f"retry-{job['id']}"}
        first = api.post(f"/v1/jobs/{job['id']}/retry", headers=key)
        assert first.status_code == 202, first.text
        store = BlobStore(settings.blob_dir)
        Path(store._path(job["inputs"][0]["sha256"])).unlink()
        again = api.post(f"/v1/jobs/{job['id']}/retry", headers=key)
        assert again.status_code == 202, again.text
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["Idempotent-Replayed"] == "true"
        _forget_job(settings, job["id"])
        for named in (job["id"], job["id"][:8]):
            rerun = api.post(f"/v1/jobs/{named}/retry", headers=key)
            assert rerun.status_code == 202, rerun.text
            assert rerun.json()["id"] == first.json()["id"]
            assert rerun.json()["retry_of"] == job["id"]
        # Without the key (or with another), the job retried is gone: 404.
        gone = api.post(f"/v1/jobs/{job['id']}/retry", headers={"Idempotency-Key": "other"})
        assert gone.status_code == 404


def test_a_retry_keeps_what_submit_did_to_the_images(tmp_path: Path, redis_url: str) -> None:
    """A retry re-admits the stored PNG: its inputs keep the first submit's changes
    (``gif_to_png``), not an empty list."""
    api, _ = _api(tmp_path, redis_url)
    gif = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(gif, "GIF")
    with api:
        submitted = api.post(
            "/v1/jobs",
            data={"task": "caption"},
            files=[("image", ("coffee.gif", gif.getvalue(), "image/gif"))],
        )
        assert submitted.status_code == 202, submitted.text
        changes = submitted.json()["inputs"][0]["changes"]
        assert changes == ["gif_to_png"], changes
        api.post(f"/v1/jobs/{submitted.json()['id']}/cancel")
        retried = api.post(f"/v1/jobs/{submitted.json()['id']}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["inputs"][0]["changes"] == changes
