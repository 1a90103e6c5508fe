"""A bad ``priority`` in a JSON body (POST /v1/jobs, POST /v1/batches) is a 422 with the
multipart form's wording, naming the value and the range (issue 23 review 13), not
pydantic's "Input should be less than or equal to 9". In process, on the real Redis."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import redis_db
from tests.integration.helpers import scene_png
from tests.integration.inprocess import InProcessApi, in_process_api

pytestmark = pytest.mark.integration

HELP = "is not a priority; give an integer from 0 to 9 (9 starts first among your jobs)."
# JSON value -> how the message shows it (as JSON).
BAD = [(10, "10"), (-1, "-1"), ("x", '"x"'), (True, "true"), (3.5, "3.5"), ("7", '"7"')]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[InProcessApi]:
    with in_process_api(
        Path(tmp_path_factory.mktemp("prio-json")), redis_db(redis_url), ("acme",)
    ) as app:
        yield app


def _message(response: Any) -> str:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    return str(error["message"])


@pytest.mark.parametrize(("value", "shown"), BAD)
def test_a_json_job_gets_the_multipart_wording(
    api: InProcessApi, value: object, shown: str
) -> None:
    data, _ = scene_png(1, width=96, height=96, count=1)
    body = {"task": "caption", "images": [{"data": base64.b64encode(data).decode()}]}
    with api.client() as client:
        message = _message(client.post("/v1/jobs", json=body | {"priority": value}))
    assert message == f"priority: {shown} {HELP}"


@pytest.mark.parametrize(("value", "shown"), BAD)
def test_a_json_batch_gets_the_multipart_wording(
    api: InProcessApi, value: object, shown: str
) -> None:
    body = {"name": "bad", "task": "caption", "priority": value}
    with api.client() as client:
        message = _message(client.post("/v1/batches", json=body))
    assert message == f"priority: {shown} {HELP}"


def test_null_and_each_valid_priority_still_pass(api: InProcessApi) -> None:
    with api.client() as client:
        for value in (None, 0, 9):
            name = f"ok-{value}"
            response = client.post("/v1/batches", json={"name": name, "task": "caption",
                                                         "priority": value})  # fmt: skip
            assert response.status_code == 201, response.text
            assert response.json()["priority"] == (5 if value is None else value)
