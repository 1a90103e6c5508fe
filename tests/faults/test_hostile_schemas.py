"""Hostile-but-valid schemas (issue 16, case 1): patterns that backtrack exponentially in
Python's re, answers that fail them, through the real stack. Every job ends quickly, none
as internal_error or deadline_exceeded, no 500s, and the worker still serves other jobs.

Schemas RE2 cannot take, $ref loops and exponential $ref expansion are 422s at submit."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.conftest import report
from tests.faults.stack import FaultStack, JobForm
from tests.integration.helpers import scene_png
from tests.services import postgres_bindir, postgres_server
from visionq.vision.schema_safety import pattern_search

pytestmark = pytest.mark.faults
N = 120
# A string property the emulator fills with "[synthetic value, emulator] <a description>".
FAILS = "^(.|.)*X$"  # the issue's pattern: never matches, exponential in Python's re
NESTED = r"^(\[?[\w ,.\]]+)+X$"  # nested quantifiers over the answer's characters
MATCHES = r"^(\[|\[)(.|.)*$"  # exponential in re on failure, but this answer matches it


def _object(pattern: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"caption": {"type": "string", "pattern": pattern}},
        "required": ["caption"],
    }


SCHEMAS: list[dict[str, Any]] = [
    _object(FAILS),
    _object(NESTED),
    _object(MATCHES),
    {  # patternProperties and additionalProperties: keys matched with RE2 too
        "type": "object",
        "properties": {"caption": {"type": "string"}},
        "patternProperties": {"^(a|a)*$": {"type": "string"}},
        "additionalProperties": False,
        "required": ["caption"],
    },
]
REFUSED: list[dict[str, Any]] = [
    _object("^(?=a).*$"),
    _object(r"^(a+)\1$"),
    {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    {
        "$defs": {
            **{f"a{i}": {"anyOf": [{"$ref": f"#/$defs/a{i + 1}"}] * 2} for i in range(24)},
            "a24": {"type": "string"},
        },
        "$ref": "#/$defs/a0",
    },
]


def _submit(stack: FaultStack, schemas: list[dict[str, Any]]) -> list[httpx.Response]:
    image, _ = scene_png(7, 320, 240)

    def form(index: int) -> JobForm:
        schema = schemas[index % len(schemas)]
        data = {"task": "custom", "prompt": f"Describe the image #{index}.",
                "schema": json.dumps(schema), "options": json.dumps({"cache": False})}  # fmt: skip
        return data, [("image", ("scene.png", image, "image/png"))]

    return stack.post_jobs(len(schemas) if schemas is REFUSED else N, form)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc, as CI runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _python_re_before(pattern: str, text: str) -> dict[str, float]:
    """The old code path (jsonschema's re.search) on prefixes of a real answer, and its
    extrapolation to the whole answer (it doubles with every character)."""
    timings = {}
    for size in (16, 18, 20):
        started = time.process_time()
        re.search(pattern, text[:size])
        timings[size] = time.process_time() - started
    per_char = (timings[20] / max(timings[18], 1e-9)) ** 0.5
    return {
        "re_s_at_20_chars": round(timings[20], 4),
        "re_growth_per_char": round(per_char, 2),
        "re_extrapolated_s_for_answer": float(f"{timings[20] * per_char ** (len(text) - 20):.3g}"),
    }


def _run(stack: FaultStack, name: str) -> None:
    worker = stack.start_worker(concurrency=16)
    cpu_before = _cpu_s(worker.popen.pid)
    started = time.monotonic()

    refused = _submit(stack, REFUSED)
    assert [r.status_code for r in refused] == [422] * len(REFUSED), [r.text for r in refused]
    assert {r.json()["error"]["code"] for r in refused} == {"invalid_schema"}
    assert "RE2" in refused[0].json()["error"]["message"]
    assert "$ref loop" in refused[2].json()["error"]["message"]

    responses = _submit(stack, SCHEMAS)
    assert all(r.status_code == 202 for r in responses), {r.status_code for r in responses}
    # The worker still serves plain jobs behind the hostile ones.
    plain = stack.submit_many(10)
    assert all(r.status_code == 202 for r in plain), {r.status_code for r in plain}
    elapsed = stack.wait_all_terminal(N + 10, timeout=120)
    wall = time.monotonic() - started
    cpu_s = _cpu_s(worker.popen.pid) - cpu_before

    audit = stack.audit()
    audit.check_exactly_once()
    codes = {job["error_code"] for job in audit.jobs if job["status"] == "failed"}
    assert codes <= {"schema_validation_failed"}, codes  # never internal_error or a deadline
    with stack.client() as client:
        listed = client.get("/v1/jobs", params={"limit": 200}).raise_for_status().json()
    statuses = [job["status"] for job in listed["jobs"]]
    assert len(statuses) == N + 10
    failed = [job for job in audit.jobs if job["status"] == "failed"]
    assert len(failed) >= N // 2  # FAILS and NESTED never match
    assert sum(1 for job in audit.jobs if job["status"] == "succeeded") >= N // 4 + 10
    # No paid answer lost: every 200 is a stored result or an attempt failing the schema.
    stats = stack.emulator_stats()
    schema_attempts = sum(
        1 for a in audit.attempts if str(a["error_class"]).startswith("Schema")
    )  # fmt: skip
    assert stats["answered_ok"] == audit.by_status().get("succeeded", 0) + schema_attempts

    answer = "[synthetic value, emulator] a scene with a red circle, a blue square and more"
    started_re2 = time.perf_counter()
    assert not pattern_search(FAILS, answer * 1000)
    report(
        f"hostile schemas ({name})",
        audit.figures(
            submit_to_all_terminal_s=round(elapsed, 1),
            wall_s=round(wall, 1),
            worker_cpu_s=round(cpu_s, 1),
            refused_at_submit=len(REFUSED),
            gemini_calls=stats["generate_calls"],
            re2_s_for_80kb=round(time.perf_counter() - started_re2, 5),
            **_python_re_before(FAILS, answer),
        ),
    )


def test_hostile_schemas_on_sqlite(make_stack: Callable[..., FaultStack]) -> None:
    stack = make_stack(emulator_flags=["--invalid-json-every", "9", "--latency-ms", "20"])
    _run(stack, "sqlite")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL server binaries not installed")
    with postgres_server() as url:
        yield url


def test_hostile_schemas_on_postgresql(
    make_stack: Callable[..., FaultStack], postgres_url: str
) -> None:
    stack = make_stack(postgres_url, emulator_flags=["--invalid-json-every", "9"])
    _run(stack, "postgresql")
