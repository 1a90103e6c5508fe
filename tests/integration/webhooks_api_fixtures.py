"""Fixtures and calls of the webhook route tests: the in-process app (per module, on the
session's database, SQLite and PostgreSQL), tenant A's client, and an endpoint made or an
error expected. Import them into a test module to use them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import redis_db
from tests.integration.inprocess import InProcessApi, in_process_api

# The receiver's address: allowed like the stack's image host (127.0.0.2), never contacted.
HOOK = "http://127.0.0.2:9/hook"
MAX_ENDPOINTS = 3


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, database_url: str
) -> Iterator[InProcessApi]:
    """The app on the session's database (both kinds), with tenants of this module's own."""
    suffix = uuid.uuid4().hex[:8]
    with in_process_api(
        Path(tmp_path_factory.mktemp("webhooks-api")), redis_db(redis_url),
        (f"wh-a-{suffix}", f"wh-b-{suffix}", f"wh-c-{suffix}", f"wh-d-{suffix}"),
        database_url=database_url,
        url_fetch_allowed_networks=["127.0.0.2/32"], webhook_max_endpoints=MAX_ENDPOINTS,
    ) as app:  # fmt: skip
        yield app


def _tenant(api: InProcessApi, index: int) -> str:
    return sorted(api.keys)[index]


@pytest.fixture
def client(api: InProcessApi) -> Iterator[httpx.Client]:
    """Tenant A's client; its endpoints deleted after each test (the limit is per tenant)."""
    with api.client(_tenant(api, 0)) as client:
        yield client
        for endpoint in client.get("/v1/webhooks").json()["data"]:
            client.delete(f"/v1/webhooks/{endpoint['id']}")


def _create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"url": HOOK, "events": ["job.succeeded", "job.failed"]} | fields
    response = client.post("/v1/webhooks", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    code: str = response.json()["error"]["code"]
    return code
