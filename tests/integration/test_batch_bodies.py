"""The JSON bodies of the batch routes (create, lookup, re-run), in process (no worker; the
database does not matter here): the key is checked before any body is read, bodies are
bounded by VISIONQ_MAX_REQUEST_BYTES, malformed JSON says what is wrong and what to send
(the 422 POST /v1/jobs gives, deep nesting included), a re-run without a body re-runs the
failed items, and its model and options are checked whether or not an item qualifies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.integration.conftest import redis_db
from tests.integration.inprocess import InProcessApi, in_process_api

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[InProcessApi]:
    """The app in process with a small request limit."""
    with in_process_api(
        Path(tmp_path_factory.mktemp("batch-bodies")), redis_db(redis_url), ("acme",),
        max_request_bytes=LIMIT,
    ) as app:  # fmt: skip
        yield app


def _error(response: Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code, body
    message: str = body["message"]
    return message


def _batch(client: TestClient, name: str) -> str:
    made = client.post("/v1/batches", json={"name": name, "task": "caption"})
    assert made.status_code in (200, 201), made.text
    batch_id: str = made.json()["id"]
    return batch_id


def test_the_key_comes_before_the_body(api: InProcessApi) -> None:
    """Without a key: 401 whatever the body (too large, malformed, wrongly typed) and
    whatever the id; no body is parsed for a caller the API does not know."""
    with api.client("acme") as client:
        batch_id = _batch(client, "keyfirst")
    huge = json.dumps({"name": "x", "task": "caption", "prompt": "p" * (LIMIT * 2)})
    with api.client(None) as anonymous:
        for path, body in (
            ("/v1/batches", huge),
            ("/v1/batches", '{"name": 5}'),
            (f"/v1/batches/{batch_id}/rerun", "{"),
            (f"/v1/batches/{batch_id}/lookup", '{"keys": 5}'),
            ("/v1/batches/not-a-uuid/items", "{}"),
            ("/v1/batches/not-a-uuid/rerun", "{}"),
            ("/v1/batches/not-a-uuid/lookup", "{}"),
        ):
            answer = anonymous.post(
                path, content=body, headers={"content-type": "application/json"}
            )
            _error(answer, 401, "unauthorized")


def test_bodies_are_bounded(api: InProcessApi) -> None:
    """create, lookup and re-run bodies over VISIONQ_MAX_REQUEST_BYTES are 413 (they were
    read whole, of any size); lookup keys no item can have are simply not found."""
    with api.client("acme") as client:
        batch_id = _batch(client, "bounded")
        big = {"name": "big", "task": "caption", "prompt": "p" * (LIMIT * 2)}
        _error(client.post("/v1/batches", json=big), 413, "payload_too_large")
        keys = {"keys": ["x" * (LIMIT * 2)]}
        _error(client.post(f"/v1/batches/{batch_id}/lookup", json=keys), 413, "payload_too_large")
        options = {"options": {"note": "n" * (LIMIT * 2)}}
        _error(client.post(f"/v1/batches/{batch_id}/rerun", json=options), 413, "payload_too_large")
        text = client.post("/v1/batches", content="name=x", headers={"content-type": "text/plain"})
        _error(text, 415, "unsupported_media_type")


def test_malformed_json_says_what_to_send(api: InProcessApi) -> None:
    """Malformed JSON, deep nesting and a body that is no object: the 422 POST /v1/jobs
    answers, with where it broke and an example to send (not "14: JSON decode error")."""
    deep = '{"name": "deep", "task": "caption", "options": {"a": ' + "[" * 5000 + "]" * 5000 + "}}"
    with api.client("acme") as client:
        batch_id = _batch(client, "malformed")
        json_type = {"content-type": "application/json"}
        for path in (
            "/v1/batches",
            f"/v1/batches/{batch_id}/rerun",
            f"/v1/batches/{batch_id}/lookup",
        ):
            broken = client.post(path, content='{"name": ', headers=json_type)
            message = _error(broken, 422, "invalid_request")
            assert "EOF while parsing" in message and "Send a JSON object" in message, message
            nested = client.post(path, content=deep, headers=json_type)
            assert nested.status_code == 422, nested.text
            assert "recursion limit" in nested.json()["error"]["message"]
            listed = client.post(path, content="[]", headers=json_type)
            assert "Send a JSON object" in _error(listed, 422, "invalid_request")
        jobs = client.post("/v1/jobs", content=deep, headers=json_type)
        assert jobs.status_code == 422  # the single-job route's answer, the same


def test_rerun_without_a_body_and_its_overrides(api: InProcessApi) -> None:
    """No body means the defaults (the failed items: none here); a bad model or options is
    a 422 although no item qualifies, as it is when some do."""
    with api.client("acme") as client:
        batch_id = _batch(client, "overrides")
        path = f"/v1/batches/{batch_id}/rerun"
        plain = client.post(path)
        assert plain.status_code == 202 and plain.json()["rerun"] == 0, plain.text
        _error(client.post(path, json={"model": "nope"}), 422, "unknown_model")
        _error(client.post(path, json={"options": {"temperature": "hot"}}), 422, "invalid_options")
        assert client.post(path, json={"options": {"temperature": 0}}).status_code == 202


def test_strict_fields_of_create_and_add(api: InProcessApi) -> None:
    """expected_items is a number, not true; an add of no items is a 422 saying so."""
    with api.client("acme") as client:
        strict = client.post(
            "/v1/batches", json={"name": "strict", "task": "caption", "expected_items": True}
        )
        assert "expected_items" in _error(strict, 422, "invalid_request")
        batch_id = _batch(client, "empty-add")
        empty = client.post(f"/v1/batches/{batch_id}/items", json={"items": []})
        assert "items" in _error(empty, 422, "invalid_request")
