"""The job watchdog (worker/watchdog.py) and bounded schema validation in the pipeline, on a
real (SQLite) database and blob store with Gemini stood in for in-process (issue 16)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from tests.unit.workercontext import worker_context
from visionq.emulator.shapes import encode, random_scene
from visionq.models.budgets import reserve
from visionq.models.jobs import NewInput, create_job, get_job
from visionq.models.tables import Job
from visionq.worker.context import WorkerContext
from visionq.worker.gemini import GeminiAnswer, GeminiCaller, _answer_from_response
from visionq.worker.pipeline import run_job
from visionq.worker.watchdog import JobDeadlineExceeded, Watchdog

HOSTILE = "^(.|.)*X$"


def _reply(text: str) -> GeminiAnswer:
    body = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                        "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 10,
                          "totalTokenCount": 110},
        "modelVersion": "gemini-2.5-flash",
    }  # fmt: skip
    return _answer_from_response(types.GenerateContentResponse.model_validate(body))


class StandIn(GeminiCaller):
    """Runs ``behave`` for each call and answers what it returns."""

    def __init__(self, behave: Callable[[], str]) -> None:
        super().__init__(None)
        self.behave = behave
        self.calls = 0

    def generate(
        self, *, model: str, contents: list[Any], config: dict[str, Any], **tier: Any
    ) -> GeminiAnswer:
        self.calls += 1
        return _reply(self.behave())


@pytest.fixture
def context(tmp_path: Path) -> Iterator[WorkerContext]:
    built = worker_context(tmp_path, job_deadline_s=0.5)
    yield built
    built.close()


def _job(context: WorkerContext, schema: dict[str, Any] | None = None) -> str:
    image, _ = random_scene(3, width=320, height=240)
    data = encode(image, "PNG")
    sha = context.blobs.put(data)
    with context.sessions.begin() as session:
        assert reserve(session, tenant="t", amount_nusd=0)
        return create_job(
            session, tenant="t", task="custom" if schema else "caption",
            model="gemini-2.5-flash", prompt="Describe it." if schema else None, labels=None,
            options={}, inputs=[NewInput(sha, "image/png", 320, 240, len(data))],
            response_schema=schema,
        ).id  # fmt: skip


def _load(context: WorkerContext, job_id: str) -> Job:
    with context.sessions() as session:
        job = get_job(session, tenant="t", job_id=job_id)
        assert job is not None
        session.expunge_all()
        return job


def _run_in_thread(context: WorkerContext, job_id: str, watchdog: Watchdog) -> list[object]:
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(run_job(context, job_id, watchdog))
        except JobDeadlineExceeded as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the watchdog freed the job's thread"
    return outcome


def test_a_spinning_job_is_stopped_at_its_deadline_and_its_thread_freed(
    context: WorkerContext,
) -> None:
    def spin() -> str:
        count = 0
        while True:  # CPU-bound Python, as a backtracking regex in Python code would be
            count += 1

    context.gemini = StandIn(spin)
    watchdog = Watchdog(context.sessions, context.leases, deadline_s=0.5, grace_s=0.2)
    job_id = _job(context)
    outcome = _run_in_thread(context, job_id, watchdog)
    watchdog.close()
    assert len(outcome) == 1 and isinstance(outcome[0], JobDeadlineExceeded)
    job = _load(context, job_id)
    assert job.status == "failed" and job.error_code == "deadline_exceeded"
    assert "VISIONQ_JOB_DEADLINE_S" in (job.error_message or "")
    assert watchdog.stopped == 1
    assert not context.leases._tokens, "the lease is no longer renewed"
    assert [a.outcome for a in job.attempts] == ["failed"]
    assert job.attempts[0].error_class == "JobDeadlineExceeded"


def test_an_answer_after_the_deadline_is_discarded(context: WorkerContext) -> None:
    # Blocked in one C call (time.sleep): interrupted only when it returns, and what the
    # thread would store then is fenced off by the lease token.
    def slow() -> str:
        time.sleep(1.5)
        return "A late caption."

    context.gemini = StandIn(slow)
    watchdog = Watchdog(context.sessions, context.leases, deadline_s=0.5, grace_s=0.1)
    job_id = _job(context)
    outcome = _run_in_thread(context, job_id, watchdog)
    watchdog.close()
    assert isinstance(outcome[0], JobDeadlineExceeded)
    job = _load(context, job_id)
    assert job.status == "failed" and job.error_code == "deadline_exceeded"
    assert job.result is None


def test_a_job_within_its_deadline_is_left_alone(context: WorkerContext) -> None:
    context.gemini = StandIn(lambda: "A caption.")
    watchdog = Watchdog(context.sessions, context.leases, deadline_s=60, grace_s=0.1)
    job_id = _job(context)
    assert _run_in_thread(context, job_id, watchdog) == ["succeeded"]
    watchdog.check()
    watchdog.close()
    assert watchdog.stopped == 0 and _load(context, job_id).status == "succeeded"


def test_a_hostile_pattern_fails_the_schema_quickly_not_the_worker(
    context: WorkerContext,
) -> None:
    # The schema: Python's re would take longer than the universe's age on this.
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": HOSTILE}},
              "required": ["a"]}  # fmt: skip
    context.settings.job_deadline_s = 60
    context.gemini = StandIn(lambda: json.dumps({"a": "a" * 100_000}))
    job_id = _job(context, schema)
    started = time.perf_counter()
    assert run_job(context, job_id) == "failed"
    assert time.perf_counter() - started < 10
    job = _load(context, job_id)
    assert job.error_code == "schema_validation_failed"
    assert context.gemini.calls == 2  # asked once more, as for any mismatch


def test_an_answer_too_deep_to_validate_is_a_schema_failure_not_internal_error(
    context: WorkerContext,
) -> None:
    context.settings.job_deadline_s = 60
    context.gemini = StandIn(lambda: "[" * 50_000 + "]" * 50_000)
    job_id = _job(context, {"type": "array"})
    assert run_job(context, job_id) == "failed"
    job = _load(context, job_id)
    assert job.error_code == "schema_validation_failed"
    assert "nested" in (job.error_message or "")
