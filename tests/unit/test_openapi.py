"""The OpenAPI document is true to the API (issue 17), and /docs works offline."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from visionq.api.app import create_app
from visionq.models.leases import InputSpec, JobSpec
from visionq.models.settings import Settings
from visionq.vision.tasks import ImageSize, TaskKind, parse_answer
from visionq.worker.storing import interpret


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return create_app(Settings(page_size_max=177)).openapi()


def _operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    }


def test_every_v1_operation_asks_for_the_bearer_key(doc: dict[str, Any]) -> None:
    scheme = doc["components"]["securitySchemes"]["HTTPBearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for label, operation in _operations(doc).items():
        expected = [{"HTTPBearer": []}] if " /v1/" in label else None
        assert operation.get("security") == expected, label


def test_png_routes_type_their_image_and_their_errors(doc: dict[str, Any]) -> None:
    for path in ("/v1/jobs/{job_id}/annotated.png", "/v1/jobs/{job_id}/masks/{index}.png"):
        responses = doc["paths"][path]["get"]["responses"]
        binary = {"type": "string", "format": "binary"}
        assert responses["200"]["content"] == {"image/png": {"schema": binary}}
        errors = {status for status in responses if status != "200"}
        # 410: an image or mask removed by retention (api/routes/images.py).
        assert errors == {"401", "404", "405", "409", "410", "422", "503"}, path
        for status in errors:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)


def test_the_input_image_route_types_its_images_and_errors(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/v1/jobs/{job_id}/images/{position}"]["get"]
    binary = {"type": "string", "format": "binary"}
    content = operation["responses"]["200"]["content"]
    assert content == {
        mime: {"schema": binary} for mime in ("image/png", "image/jpeg", "image/webp")
    }
    errors = {status for status in operation["responses"] if status != "200"}
    assert errors == {"304", "401", "404", "405", "409", "410", "413", "422", "503"}
    position = next(p for p in operation["parameters"] if p["name"] == "position")
    assert position["schema"]["minimum"] == 0


def test_the_console_routes_are_documented(doc: dict[str, Any]) -> None:
    """The list filters and the spending report, as the console uses them; the console's
    own files are not API operations."""
    parameters = {p["name"]: p for p in doc["paths"]["/v1/jobs"]["get"]["parameters"]}
    assert {"task", "model", "tier", "batch", "created_after", "created_before"} <= set(parameters)
    spending = doc["paths"]["/v1/spending"]["get"]
    assert spending["tags"] == ["cost"]
    days = next(p for p in spending["parameters"] if p["name"] == "days")
    assert (days["schema"]["minimum"], days["schema"]["maximum"]) == (1, 366)
    report = doc["components"]["schemas"]["SpendingReport"]
    assert set(report["properties"]) == {"since", "until", "rows", "totals", "estimation"}
    # One type for days: a row's day is a date like since and until.
    row = doc["components"]["schemas"]["SpendingRow"]["properties"]["day"]
    assert row["format"] == report["properties"]["since"]["format"] == "date"
    assert not [path for path in doc["paths"] if path.startswith("/console")]


def test_each_route_lists_only_the_errors_it_can_answer(doc: dict[str, Any]) -> None:
    operations = _operations(doc)

    def errors(label: str) -> set[int]:
        return {int(status) for status in operations[label]["responses"]} - {200, 202}

    # 405 everywhere: any path answers a method it does not take.
    assert errors("GET /v1/models") == {401, 405, 503}
    assert errors("GET /v1/jobs/{job_id}") == {401, 404, 405, 409, 422, 503}
    assert errors("POST /v1/jobs/{job_id}/cancel") == {401, 404, 405, 409, 422, 503}
    assert errors("GET /v1/jobs") == {400, 401, 405, 422, 503}
    assert {402, 429, 507} <= errors("POST /v1/jobs")
    assert not {402, 429, 404} & errors("POST /v1/estimate")


def test_every_operation_documents_405_with_its_allow_header(doc: dict[str, Any]) -> None:
    """The issue wants 405 documented: our error shape, and the Allow header it carries."""
    for label, operation in _operations(doc).items():
        answer = operation["responses"]["405"]
        assert "does not take that method" in answer["description"], label
        assert set(answer["headers"]) == {"Allow"}, label
        schema = answer["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, label
    assert "ErrorBody" in doc["components"]["schemas"]


def test_status_and_task_are_enums(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    job = schemas["JobPublic"]["properties"]
    assert job["status"]["$ref"] == "#/components/schemas/JobStatus"
    assert set(schemas["JobStatus"]["enum"]) == {
        "queued", "running", "succeeded", "failed", "cancelled",
    }  # fmt: skip
    assert job["task"]["$ref"] == "#/components/schemas/TaskKind"
    assert schemas["TaskKind"]["enum"] == [kind.value for kind in TaskKind]
    body = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["properties"]["task"]["enum"] == list(TaskKind)


def test_submit_documents_its_required_body_and_idempotency_key(doc: dict[str, Any]) -> None:
    submit = doc["paths"]["/v1/jobs"]["post"]
    assert submit["requestBody"]["required"] is True
    assert set(submit["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert [p["name"] for p in submit["parameters"]] == ["Idempotency-Key", "X-Request-ID"]


def test_the_estimate_body_is_required_and_every_operation_takes_a_request_id(
    doc: dict[str, Any],
) -> None:
    assert doc["paths"]["/v1/estimate"]["post"]["requestBody"]["required"] is True
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            names = [p["name"] for p in operation.get("parameters", [])]
            assert names.count("X-Request-ID") == 1, (method, path)


def test_the_description_names_all_seven_tasks(doc: dict[str, Any]) -> None:
    for kind in TaskKind:
        assert re.search(rf"\b{kind.value}\b", doc["info"]["description"]), kind


def test_limit_has_the_servers_maximum(doc: dict[str, Any]) -> None:
    params = {p["name"]: p for p in doc["paths"]["/v1/jobs"]["get"]["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 177
    assert "ids" in params


def test_the_estimate_answer_is_typed(doc: dict[str, Any]) -> None:
    answer = doc["paths"]["/v1/estimate"]["post"]["responses"]["200"]["content"]
    assert answer["application/json"]["schema"] == {"$ref": "#/components/schemas/EstimatePublic"}
    properties = doc["components"]["schemas"]["EstimatePublic"]["properties"]
    assert {"model", "images", "cost_usd", "known", "warnings"} <= set(properties)


def _segment_result() -> dict[str, Any]:
    box_2d = [100, 100, 200, 200]
    mask = [[100, 100], [150, 100], [150, 200], [100, 200]]
    image = InputSpec(position=0, sha256="a" * 64, mime_type="image/png", width=640, height=640)
    job = JobSpec(
        id="j", tenant="t", task="segment", model="m", prompt=None, labels=None, options={},
        response_schema=None, estimate=None, started_at=datetime.now(UTC), inputs=(image,),
    )  # fmt: skip
    return interpret(job, json.dumps([{"box_2d": box_2d, "label": "cat", "mask": mask}])).result


def _result(task: TaskKind) -> dict[str, Any]:
    if task is TaskKind.SEGMENT:
        return _segment_result()
    text = {
        TaskKind.DETECT: '[{"box_2d": [10, 20, 300, 400], "label": "cat"}]',
        TaskKind.CLASSIFY: "dog",
        TaskKind.CUSTOM: '{"count": 2}',
    }.get(task, "A cat on a mat.")
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}}
    return parse_answer(
        task,
        text,
        images=[ImageSize(640, 480)],
        labels=["cat", "dog"],
        schema=schema if task is TaskKind.CUSTOM else None,
    )


EXPECTED = {
    TaskKind.CAPTION: "TextResult", TaskKind.ASK: "TextResult", TaskKind.COMPARE: "TextResult",
    TaskKind.CLASSIFY: "ClassifyResult", TaskKind.DETECT: "DetectResult",
    TaskKind.SEGMENT: "SegmentResult", TaskKind.CUSTOM: "CustomResult",
}  # fmt: skip


@pytest.mark.parametrize("task", list(TaskKind))
def test_the_worker_results_fit_their_documented_schema(
    doc: dict[str, Any], task: TaskKind
) -> None:
    result = _result(task)
    union = doc["components"]["schemas"]["JobPublic"]["properties"]["result"]["anyOf"]
    # A generated client keeps the first shape that reads: it must be the task's own.
    first = next(
        ref["$ref"].rsplit("/", 1)[1]
        for ref in union
        if "$ref" in ref and _fits(doc, ref["$ref"], result)
    )
    assert first == EXPECTED[task]


def _fits(doc: dict[str, Any], ref: str, value: Any) -> bool:
    schema = {**doc, "$ref": ref}
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    # Readable the way a generated client reads it: every required property present.
    required = doc["components"]["schemas"][ref.rsplit("/", 1)[1]].get("required", [])
    return all(name in value for name in required)


def test_docs_load_only_local_assets_and_they_are_served() -> None:
    client = TestClient(create_app(Settings()))
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        urls = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)["']""", html.text)
        urls += re.findall(r"""url: ?["']([^"']+)["']""", html.text)
        assert urls, html.text
        for url in urls:
            assert url.startswith("/"), f"{page} loads {url} from elsewhere"
            assert client.get(url).status_code == 200, url
        assert "https://" not in html.text, html.text


def test_a_method_a_path_lacks_is_405_in_the_error_shape() -> None:
    response = TestClient(create_app(Settings())).delete("/v1/models")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET"


def test_shared_declarations_are_written_once(doc: dict[str, Any]) -> None:
    """Submit and retry document the one Idempotency-Key header; the prefix minimum comes
    from models.jobrefs.MIN_PREFIX wherever the document states it."""
    from visionq.models.jobrefs import MIN_PREFIX

    def key_header(path: str) -> dict[str, Any]:
        (found,) = [
            parameter
            for parameter in doc["paths"][path]["post"]["parameters"]
            if parameter["name"] == "Idempotency-Key"
        ]
        return found

    assert key_header("/v1/jobs") == key_header("/v1/jobs/{job_id}/retry")
    assert f"at least {MIN_PREFIX} " in doc["info"]["description"]
    retry = doc["paths"]["/v1/jobs/{job_id}/retry"]["post"]["parameters"]
    (job_id,) = [parameter for parameter in retry if parameter["name"] == "job_id"]
    assert f"at least {MIN_PREFIX} hex characters" in job_id["description"]


TIER_CODES = {"tier_not_priced", "tier_unavailable", "deadline_too_short"}
ADMITTING = (
    "POST /v1/jobs", "POST /v1/estimate", "POST /v1/jobs/{job_id}/retry", "POST /v1/batches",
    "POST /v1/batches/{batch_id}/items", "POST /v1/batches/{batch_id}/rerun",
)  # fmt: skip


def test_routes_that_admit_a_job_name_the_tier_codes_of_their_422(doc: dict[str, Any]) -> None:
    operations = _operations(doc)
    for label in ADMITTING:
        answer = operations[label]["responses"]["422"]
        for code in TIER_CODES:
            assert f"`{code}`" in answer["description"], (label, code)
        content = answer["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, label
        assert set(content["examples"]) == TIER_CODES, label
    # Routes that admit no job do not claim them.
    assert (
        "tier_not_priced"
        not in operations["GET /v1/jobs/{job_id}"]["responses"]["422"]["description"]
    )


def _options_schema(node: Any) -> list[dict[str, Any]]:
    """Every ``options`` property schema anywhere under ``node``."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and isinstance(props.get("options"), dict):
            found.append(props["options"])
        for value in node.values():
            found.extend(_options_schema(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_options_schema(value))
    return found


def test_options_type_the_tier_and_the_deadline(doc: dict[str, Any]) -> None:
    bodies = [
        operation["requestBody"]["content"]["application/json"]
        for operation in _operations(doc).values()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    schemas = _options_schema(bodies)
    # A job's and an estimate's, a user batch's defaults, an item's and a rerun's options.
    assert len(schemas) == 5
    for options in schemas:
        properties = options["properties"]
        assert properties["tier"]["enum"] == ["standard", "flex", "priority", "batch", "auto"]
        deadline = properties["deadline_s"]
        assert (deadline["type"], deadline["minimum"], deadline["maximum"]) == (
            "integer", 60, 604_800,
        )  # fmt: skip
        assert "Seconds" in deadline["description"]
