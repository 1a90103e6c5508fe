"""GET /metrics on the API and each worker's metrics port, parsed with prometheus-client's
own parser. In process: the route, its token and the OpenAPI document. On the process
stack (SQLite and PostgreSQL): an API with two uvicorn processes and workers after a run:
counts summed over every process (multiprocess mode), matching the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import redis_db
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
