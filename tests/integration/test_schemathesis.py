"""Fuzzing the live API from its own /openapi.json with schemathesis: no input is a 5xx.

Every operation of the schema is driven with schema-valid (positive) and, where inputs
can be invalid at all, schema-violating (negative) requests, a bounded and deterministic
number of each, against the running stack (SQLite and PostgreSQL). Only the
``not_a_server_error`` check is applied: the multipart schema cannot express what the API
refuses on purpose (an image must be one, fields are a closed set), so schema-valid
requests are often, and rightly, a 4xx.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.formats import unregister_string_format

from tests.integration.conftest import Stack
from visionq.models.db import make_engine, make_session_factory
from visionq.models.keys import create_key

pytestmark = pytest.mark.integration

TENANT = "fuzz"
MAX_EXAMPLES = 40
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# Every operation, and the modes that can produce inputs for it: an operation whose only
# input is a free string path parameter has no schema-violating request.
OPERATIONS = {
    "GET /healthz": (POSITIVE,),
    "GET /readyz": (POSITIVE,),
    "POST /v1/jobs": (POSITIVE, NEGATIVE),
    "GET /v1/jobs": (POSITIVE, NEGATIVE),
    "GET /v1/jobs/{job_id}": (POSITIVE,),
    "POST /v1/jobs/{job_id}/cancel": (POSITIVE,),
    "POST /v1/jobs/{job_id}/retry": (POSITIVE,),
    "GET /v1/jobs/{job_id}/annotated.png": (POSITIVE,),
    "GET /v1/jobs/{job_id}/masks/{index}.png": (POSITIVE, NEGATIVE),
    "GET /v1/jobs/{job_id}/images/{position}": (POSITIVE, NEGATIVE),
    "GET /v1/spending": (POSITIVE, NEGATIVE),
    "POST /v1/estimate": (POSITIVE, NEGATIVE),
    "GET /v1/models": (POSITIVE,),
    "POST /v1/batches": (POSITIVE, NEGATIVE),
    "GET /v1/batches": (POSITIVE, NEGATIVE),
    "GET /v1/batches/{batch_id}": (POSITIVE,),
    "POST /v1/batches/{batch_id}/items": (POSITIVE, NEGATIVE),
    "POST /v1/batches/{batch_id}/lookup": (POSITIVE, NEGATIVE),
    "GET /v1/batches/{batch_id}/items": (POSITIVE, NEGATIVE),
    "POST /v1/batches/{batch_id}/close": (POSITIVE,),
    "POST /v1/batches/{batch_id}/cancel": (POSITIVE,),
    "POST /v1/batches/{batch_id}/rerun": (POSITIVE, NEGATIVE),
    "GET /v1/batches/{batch_id}/results": (POSITIVE, NEGATIVE),
    "POST /v1/webhooks": (POSITIVE, NEGATIVE),
    "GET /v1/webhooks": (POSITIVE,),
    "GET /v1/webhooks/callbacks": (POSITIVE,),
    "GET /v1/webhooks/{endpoint_id}": (POSITIVE,),
    "PATCH /v1/webhooks/{endpoint_id}": (POSITIVE, NEGATIVE),
    "DELETE /v1/webhooks/{endpoint_id}": (POSITIVE,),
    "GET /v1/webhooks/{endpoint_id}/secret": (POSITIVE,),
    "POST /v1/webhooks/{endpoint_id}/rotate": (POSITIVE, NEGATIVE),
    "GET /v1/webhooks/{endpoint_id}/attempts": (POSITIVE, NEGATIVE),
    "GET /v1/webhooks/{endpoint_id}/deliveries": (POSITIVE, NEGATIVE),
    "POST /v1/webhooks/{endpoint_id}/replay": (POSITIVE, NEGATIVE),
}


def _image(fmt: str, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (40, 30), 90).save(out, fmt)
    return out.getvalue()


# "format: binary" (the multipart image parts): real images now and then, so that some
# generated jobs pass admission and reach storage, the estimate and the queue.
BINARY = st.one_of(
    st.sampled_from([_image("PNG"), _image("JPEG"), _image("WEBP"), _image("PNG", "LA")]),
    st.binary(max_size=256),
)


@dataclass
class Fuzz:
    schema: schemathesis.BaseSchema
    base_url: str
    headers: dict[str, str]


@pytest.fixture(scope="module")
def fuzz(stack: Stack) -> Iterator[Fuzz]:
    engine = make_engine(stack.env["VISIONQ_DATABASE_URL"], pool_size=1)
    try:
        with make_session_factory(engine).begin() as session:
            key = create_key(session, name="schemathesis", tenant=TENANT)
    finally:
        engine.dispose()
    headers = {"Authorization": f"Bearer {key.secret}"}
    schemathesis.openapi.format("binary", BINARY)
    try:
        schema = schemathesis.openapi.from_url(f"{stack.api_url}/openapi.json", timeout=30)
        yield Fuzz(schema=schema, base_url=stack.api_url, headers=headers)
    finally:
        unregister_string_format("binary")
        _cancel_unfinished(stack.api_url, headers)


def _cancel_unfinished(base_url: str, headers: dict[str, str]) -> None:
    """Leave no fuzzed job running for the tests that follow."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        for status in ("queued", "running"):
            page = client.get("/v1/jobs", params={"status": status, "limit": 200}).json()
            for job in page["jobs"]:
                client.post(f"/v1/jobs/{job['id']}/cancel")


def test_the_schema_has_exactly_these_operations(fuzz: Fuzz) -> None:
    """A new route must be added to OPERATIONS, so that it is fuzzed too."""
    labels = {result.ok().label for result in fuzz.schema.get_all_operations()}
    assert labels == set(OPERATIONS)


@pytest.mark.parametrize(
    ("label", "mode"),
    [(label, mode) for label, modes in OPERATIONS.items() for mode in modes],
    ids=lambda value: value.value if isinstance(value, GenerationMode) else value,
)
def test_no_input_is_a_server_error(fuzz: Fuzz, label: str, mode: GenerationMode) -> None:
    operation = fuzz.schema.find_operation_by_label(label)
    assert operation is not None, label

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,  # the same examples on every run
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def request_is_not_a_5xx(case: schemathesis.Case) -> None:
        response = case.call(base_url=fuzz.base_url, headers=fuzz.headers, timeout=60)
        case.validate_response(response, checks=[not_a_server_error], headers=fuzz.headers)

    request_is_not_a_5xx()
