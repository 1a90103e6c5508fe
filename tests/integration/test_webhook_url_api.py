"""webhook_url on jobs and batches (the in-process app): its checks, bounds, retries, storage."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest
from sqlalchemy import select, update

from tests.integration.helpers import scene_png, submit
from tests.integration.inprocess import InProcessApi
from tests.integration.webhooks_api_fixtures import HOOK, _error, _tenant, api
from visionq.models.db import make_session_factory
from visionq.models.tables import JOBS
from visionq.models.webhook_tables import WEBHOOK_ENDPOINTS

__all__ = ["api"]  # the fixture


pytestmark = pytest.mark.integration


def test_webhook_url_length_is_bounded_in_both_bodies(api: InProcessApi) -> None:
    """A multipart webhook_url has the JSON body's (and the OpenAPI document's) bounds:
    5,000 characters or an empty one is a 422, nothing stored; 2,048 is taken."""
    image, _ = scene_png(2102)
    long = HOOK + "/" + "b" * 5000
    with api.client(_tenant(api, 3)) as client:
        body = {"task": "caption", "images": [{"data": base64.b64encode(image).decode()}]}
        assert _error(client.post("/v1/jobs", json=body | {"webhook_url": long}), 422) == (
            "invalid_request"
        )
        for url in (long, ""):
            refused = submit(client, image, task="caption", webhook_url=url)
            assert _error(refused, 422) == "invalid_request"
            assert "2,048" in refused.json()["error"]["message"]
        assert client.get("/v1/jobs").json()["jobs"] == []  # nothing stored
        longest = HOOK + "/" + "b" * (2048 - len(HOOK) - 1)
        taken = submit(client, image, task="caption", webhook_url=longest)
        assert taken.status_code == 202 and taken.json()["webhook_url"] == longest
        form = client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]["requestBody"]
        field = form["content"]["multipart/form-data"]["schema"]["properties"]["webhook_url"]
        assert (field["minLength"], field["maxLength"]) == (1, 2048)


def test_webhook_url_on_jobs_and_batches(api: InProcessApi) -> None:
    image, _ = scene_png(2101)
    with api.client(_tenant(api, 2)) as client:
        body = {"task": "caption", "images": [{"data": base64.b64encode(image).decode()}]}
        refused = client.post("/v1/jobs", json=body | {"webhook_url": "http://10.1.2.3/x"})
        assert _error(refused, 422) == "url_host_not_allowed"
        assert "webhook_url" in refused.json()["error"]["message"]
        multipart_refused = submit(client, image, task="caption", webhook_url="gopher://x")
        assert _error(multipart_refused, 422) == "url_scheme_not_allowed"
        assert client.get("/v1/jobs").json()["jobs"] == []  # nothing stored

        job = client.post("/v1/jobs", json=body | {"webhook_url": HOOK}).raise_for_status()
        assert job.json()["webhook_url"] == HOOK
        form_job = submit(client, image, task="caption", webhook_url=HOOK, options={"cache": False})
        assert form_job.raise_for_status().json()["webhook_url"] == HOOK
        assert client.get(f"/v1/jobs/{job.json()['id']}").json()["webhook_url"] == HOOK
        plain = client.post("/v1/jobs", json=body | {"options": {"cache": False}})
        assert plain.raise_for_status().json()["webhook_url"] is None
        # A retry announces its end where the job it retries did.
        client.post(f"/v1/jobs/{job.json()['id']}/cancel").raise_for_status()
        retried = client.post(f"/v1/jobs/{job.json()['id']}/retry").raise_for_status()
        assert retried.json()["webhook_url"] == HOOK
        _retry_with_a_url_refused_now(api, client, retried.json()["id"])
        # The callbacks endpoint that signs them was made with the first job.
        with make_session_factory(api.engine)() as session:
            kinds = session.scalars(
                select(WEBHOOK_ENDPOINTS.c.kind).where(
                    WEBHOOK_ENDPOINTS.c.tenant == _tenant(api, 2)
                )
            ).all()
            stored = session.scalar(
                select(JOBS.c.callback_url).where(JOBS.c.id == job.json()["id"])
            )
        assert kinds == ["callbacks"] and stored == HOOK

        batch_body = {"name": f"hooked-{uuid.uuid4().hex[:6]}", "task": "caption"}
        bad = client.post("/v1/batches", json=batch_body | {"webhook_url": "http://[fd00::1]/"})
        assert _error(bad, 422) == "url_host_not_allowed"
        made = client.post("/v1/batches", json=batch_body | {"webhook_url": HOOK})
        assert made.status_code == 201 and made.json()["webhook_url"] == HOOK
        again = client.post("/v1/batches", json=batch_body | {"webhook_url": HOOK})
        assert again.status_code == 200  # the same defaults: resumed
        other = client.post("/v1/batches", json=batch_body | {"webhook_url": HOOK + "2"})
        assert _error(other, 409) == "batch_name_taken"
        assert client.get(f"/v1/batches/{made.json()['id']}").json()["webhook_url"] == HOOK


def _retry_with_a_url_refused_now(api: InProcessApi, client: httpx.Client, job_id: str) -> None:
    """A job whose stored webhook_url no longer passes the check is still retried: without
    it, with a warning, when the rules refuse it now; with it when its host does not resolve
    now (DNS may be down for a moment: every delivery checks again)."""
    client.post(f"/v1/jobs/{job_id}/cancel").raise_for_status()
    for url, kept in (("http://10.1.2.3/x", None), ("https://no-such-host.invalid/x", True)):
        with make_session_factory(api.engine).begin() as session:
            session.execute(update(JOBS).where(JOBS.c.id == job_id).values(callback_url=url))
        retried = client.post(f"/v1/jobs/{job_id}/retry")
        assert retried.status_code == 202, retried.text
        warnings = [w["code"] for w in retried.json()["warnings"]]
        if kept:
            assert retried.json()["webhook_url"] == url and "webhook_url_dropped" not in warnings
        else:
            assert retried.json()["webhook_url"] is None and "webhook_url_dropped" in warnings
            (dropped,) = [
                w for w in retried.json()["warnings"] if w["code"] == "webhook_url_dropped"
            ]
            assert "submit the job again with a webhook_url" in dropped["message"]
