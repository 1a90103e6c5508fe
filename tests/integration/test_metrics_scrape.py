"""GET /metrics on the API and each worker's metrics port, parsed with prometheus-client's
own parser. In process: the route, its token and the OpenAPI document. On the process
stack (SQLite and PostgreSQL): an API with two uvicorn processes and workers after a run:
counts summed over every process (multiprocess mode), matching the database."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import redis_db
from tests.integration.helpers import scene_png, submit
from tests.integration.inprocess import InProcessApi, in_process_api
from visionq.models.metrics import CLUSTER_GAUGES

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, have), value in samples.items()
        if sample == name and labels.items() <= dict(have).items()
    )


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[InProcessApi]:
    with in_process_api(
        Path(tmp_path_factory.mktemp("metrics-token")), redis_db(redis_url), ("acme",),
        metrics_token="scrape-me",
    ) as app:  # fmt: skip
        yield app


def test_metrics_are_open_by_default_and_parse(api: InProcessApi) -> None:
    with api.client(tenant=None) as client:
        answer = client.get("/metrics")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        samples = parse(answer.text)
        names = {name for name, _ in samples}
        assert set(CLUSTER_GAUGES) - {"visionq_budget_spent_usd", "visionq_budget_cap_usd"} <= names
        assert total(samples, "visionq_queue_jobs", lane="standard") >= 0
        # Not part of the jobs API: left out of the OpenAPI document (and its fuzzing).
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_a_metrics_token_is_required_once_set(guarded: InProcessApi) -> None:
    with guarded.client(tenant=None) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        assert "VISIONQ_METRICS_TOKEN" in refused.json()["error"]["message"]
        assert refused.headers["www-authenticate"] == "Bearer"
        # An API key is not the metrics token.
        api_key = {"Authorization": f"Bearer {guarded.keys['acme']}"}
        assert client.get("/metrics", headers=api_key).status_code == 401
        allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert allowed.status_code == 200
        assert "visionq_queue_jobs" in {name for name, _ in parse(allowed.text)}


def counted(name: str, **labels: str) -> float:
    """This process's value (the in-process app counts in the test's own registry)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_api_counts_submits_and_cancels_once_committed(api: InProcessApi) -> None:
    # No worker here: the jobs stay queued, so cancelling ends each one.
    model = "gemini-3.5-flash-lite"
    job = {"tenant": "acme", "task": "caption", "model": model, "tier": "standard"}
    ended = {**job, "outcome": "cancelled"}
    before = counted("visionq_jobs_submitted_total", **job)
    before_ended = counted("visionq_jobs_ended_total", **ended)
    with api.client() as client:
        image, _ = scene_png(7, width=96, height=96, count=1)
        first = submit(client, image, task="caption", model=model)
        assert first.status_code == 202, first.text
        # A refused submit (bad model) and a replayed Idempotency-Key store no new job.
        assert submit(client, image, task="caption", model="no-such").status_code == 422
        again = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
        for _ in range(2):
            replay = client.post(
                "/v1/jobs", headers=again, data={"task": "caption", "model": model},
                files=[("image", ("a.png", image, "image/png"))],
            )  # fmt: skip
            assert replay.status_code == 202
        assert counted("visionq_jobs_submitted_total", **job) == before + 2
        cancelled = client.post(f"/v1/jobs/{first.json()['id']}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        # Cancelling an ended job changes nothing, and counts nothing.
        client.post(f"/v1/jobs/{first.json()['id']}/cancel")
        assert counted("visionq_jobs_ended_total", **ended) == before_ended + 1

        # A batch: its items counted as submitted once added, cancelled with the batch.
        batch = {**job, "tier": "standard"}
        before = counted("visionq_jobs_submitted_total", **batch)
        created = client.post(
            "/v1/batches", json={"name": f"m-{uuid.uuid4().hex[:8]}", "task": "caption",
                                 "model": model},
        )  # fmt: skip
        batch_id = created.json()["id"]
        items = [
            {"key": f"{n}.png", "images": [{"data": base64.b64encode(
                scene_png(n, width=96, height=96, count=1)[0]).decode()}]}
            for n in range(3)
        ]  # fmt: skip
        added = client.post(f"/v1/batches/{batch_id}/items", json={"items": items})
        assert added.status_code == 200, added.text
        assert counted("visionq_jobs_submitted_total", **batch) == before + 3
        ended_before = counted("visionq_jobs_ended_total", **ended)
        assert client.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
        assert counted("visionq_jobs_ended_total", **ended) == ended_before + 3
        duration = {"task": "caption", "model": model, "tier": "standard", "outcome": "cancelled"}
        assert counted("visionq_job_duration_seconds_count", **duration) >= 4
