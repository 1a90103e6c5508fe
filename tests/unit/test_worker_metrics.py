"""The worker's metrics, read as deltas of prometheus-client's registry (in-process tests
run without PROMETHEUS_MULTIPROC_DIR): every Gemini response by code and 429 quota class,
retries, a job's end, time queued, tokens and cost per tenant, the estimate ratio, the
rate limiter's waits and timeouts, File API uploads and reuses, Gemini batch lines."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from google.genai import errors as genai_errors
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session, sessionmaker

from tests.unit.batchlane import MODEL as TWIN_MODEL
from tests.unit.lanesteps import fake_batches, lane_context, lane_steps
from tests.unit.test_batch_results import MODEL as BATCH_MODEL
from tests.unit.test_batch_results import USAGE as BATCH_USAGE
from tests.unit.test_batch_results import _batch as batch_of
from tests.unit.test_batch_results import _line as batch_line
from tests.unit.test_batch_twins import _job as twin_job
from tests.unit.test_files_margin import FakeGemini
from tests.unit.test_pipeline_answers import _mixed_429, _run, _text
from tests.unit.test_quota_class import PER_MINUTE, refusal
from tests.unit.test_watchdog import StandIn
from tests.unit.test_watchdog import _job as watchdog_job
from tests.unit.test_watchdog import _run_in_thread as run_in_thread
from tests.unit.workercontext import worker_context
from visionq.models.blobs import BlobStore
from visionq.models.leases import claim_job
from visionq.models.settings import Settings
from visionq.models.tables import JOBS
from visionq.vision.catalogue import ServiceTier
from visionq.vision.costing import to_nano
from visionq.worker.batch_results import store_outcomes
from visionq.worker.context import WorkerContext
from visionq.worker.errors import GeminiCallError
from visionq.worker.files import FilePolicy, UploadCache
from visionq.worker.gemini import GeminiCaller, _translated
from visionq.worker.ratelimit import Admission, GeminiRateLimiter, RateLimitTimeout
from visionq.worker.watchdog import Watchdog

MODEL = "gemini-3.6-flash"
# The labels of visionq_jobs_ended_total when watchdog_job's job fails.
WATCHDOG_FAILED = {
    "tenant": "t", "task": "caption", "model": "gemini-2.5-flash", "tier": "standard",
    "outcome": "failed",
}  # fmt: skip


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextlib.contextmanager
def delta(name: str, **labels: str) -> Iterator[list[float]]:
    """The change of one sample over the block, in ``found[0]`` after it."""
    found: list[float] = []
    before = value(name, **labels)
    yield found
    found.append(value(name, **labels) - before)


@pytest.fixture
def context(tmp_path: Path) -> Iterator[WorkerContext]:
    built = worker_context(tmp_path)
    yield built
    built.close()


# --- Gemini responses: worker/gemini.py _translated ----------------------------------------


@pytest.mark.parametrize(
    ("raised", "code", "quota_class"),
    [
        pytest.param(None, "200", "none", id="ok"),
        pytest.param(refusal([PER_MINUTE], "3s"), "429", "per_minute", id="429-per-minute"),
        pytest.param(refusal([], None), "429", "help_only", id="429-help-only"),
        pytest.param(
            genai_errors.APIError(503, {"error": {"code": 503, "status": "UNAVAILABLE"}}),
            "503", "none", id="503",
        ),
        pytest.param(httpx.ReadTimeout("slow"), "timeout", "none", id="timeout"),
        pytest.param(httpx.ConnectError("refused"), "unreachable", "none", id="unreachable"),
    ],
)  # fmt: skip
def test_every_sdk_call_is_timed_and_counted_by_code_and_quota_class(
    raised: Exception | None, code: str, quota_class: str
) -> None:
    labels = {"model": MODEL, "tier": "flex", "call": "generate"}
    outcome = "ok" if raised is None else "error"
    with (
        delta("visionq_gemini_responses_total", **labels, code=code,
              quota_class=quota_class) as responses,
        delta("visionq_gemini_call_seconds_count", **labels, outcome=outcome) as timed,
        contextlib.suppress(GeminiCallError),
        _translated("generate_content", None, model=MODEL, tier="flex"),
    ):  # fmt: skip
        if raised is not None:
            raise raised
    assert responses == [1.0] and timed == [1.0]


def test_a_call_that_never_reached_gemini_is_not_counted() -> None:
    before = sum(value("visionq_gemini_responses_total", model="none", tier="none",
                       call="file_get", code=code, quota_class="none")
                 for code in ("200", "error"))  # fmt: skip
    with pytest.raises(GeminiCallError), _translated("files.get", None):
        raise GeminiCallError("gemini_not_configured", "no key")
    after = sum(value("visionq_gemini_responses_total", model="none", tier="none",
                      call="file_get", code=code, quota_class="none")
                for code in ("200", "error"))  # fmt: skip
    assert after == before


def test_an_unknown_model_is_labelled_other() -> None:
    with (
        delta("visionq_gemini_responses_total", model="other", tier="standard",
              call="generate", code="200", quota_class="none") as found,
        _translated("generate_content", None, model="my-fine-tune-7", tier="standard"),
    ):  # fmt: skip
        pass
    assert found == [1.0]


# --- one job through the pipeline ----------------------------------------------------------


def test_a_retried_job_counts_its_retry_end_queue_time_tokens_cost_and_estimate(
    context: WorkerContext,
) -> None:
    estimate = {"input_tokens": 500, "cost_usd": {"min": "0.0001", "max": "0.01"}}
    ended = {"tenant": "t", "task": "caption", "model": MODEL, "tier": "standard",
             "outcome": "succeeded"}  # fmt: skip
    with (
        delta("visionq_retries_total", model=MODEL, tier="standard",
              reason="gemini_resource_exhausted") as retries,
        delta("visionq_jobs_ended_total", **ended) as ends,
        delta("visionq_job_duration_seconds_count", **{k: v for k, v in ended.items()
                                                        if k != "tenant"}) as durations,
        delta("visionq_job_queued_seconds_count", lane="standard", model=MODEL) as queued,
        delta("visionq_gemini_tokens_total", model=MODEL, tier="standard",
              kind="input") as tokens,
        delta("visionq_cost_usd_total", tenant="t", model=MODEL, tier="standard") as cost,
        delta("visionq_estimate_ratio_count", task="caption", model=MODEL,
              quantity="input_tokens") as ratio,
        delta("visionq_estimate_ratio_sum", task="caption", model=MODEL,
              quantity="input_tokens") as ratio_sum,
        delta("visionq_estimate_ratio_count", task="caption", model=MODEL,
              quantity="cost") as cost_ratio,
    ):  # fmt: skip
        job, _ = _run(context, [_mixed_429("0.01s"), _text("A scene.", model=MODEL)],
                      model=MODEL, estimate=estimate)  # fmt: skip
    assert job.status == "succeeded" and job.tier == "standard"
    assert retries == [1.0] and ends == [1.0] and durations == [1.0] and queued == [1.0]
    assert tokens == [1000.0]  # the 429 carried no usage; the answer 1000 prompt tokens
    assert job.cost_nusd is not None
    assert cost[0] == pytest.approx(job.cost_nusd / 1e9, abs=1e-12)
    assert ratio == [1.0] and ratio_sum[0] == pytest.approx(1000 / 500)
    assert cost_ratio == [1.0]


def test_a_failed_job_counts_as_failed(context: WorkerContext) -> None:
    labels = {"tenant": "t", "task": "caption", "model": MODEL, "tier": "standard"}
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": MODEL}
    with delta("visionq_jobs_ended_total", **labels, outcome="failed") as failed:
        job, _ = _run(context, [blocked], model=MODEL)
    assert job.status == "failed" and failed == [1.0]


# --- the shared rate limiter -------------------------------------------------------------


def _limiter(waits: list[float]) -> GeminiRateLimiter:
    # Only acquire's loop is under test: _try answers the scripted waits.
    limiter = GeminiRateLimiter.__new__(GeminiRateLimiter)
    limiter._local = threading.local()
    limiter.learn = None  # no learned factors to read
    answers = iter(waits)

    def attempt(*_a: object, **_k: object) -> tuple[float, Admission | None]:
        wait = next(answers)
        return wait, None if wait > 0 else Admission(MODEL)

    limiter._try = attempt  # type: ignore[method-assign]
    return limiter


def test_the_limiter_observes_the_time_slept_before_admission() -> None:
    slept: list[float] = []
    with (
        delta("visionq_ratelimit_wait_seconds_count", model=MODEL) as count,
        delta("visionq_ratelimit_wait_seconds_sum", model=MODEL) as total,
    ):
        _limiter([0.5, 0.25, 0.0]).acquire(MODEL, 10, deadline=1e12, sleep=slept.append)
        _limiter([0.0]).acquire(MODEL, 10, deadline=1e12, sleep=slept.append)
    assert count == [2.0]
    assert len(slept) == 2 and total[0] == pytest.approx(sum(slept)) and sum(slept) >= 0.75


def test_a_limiter_timeout_is_counted() -> None:
    with (
        delta("visionq_ratelimit_timeouts_total", model=MODEL) as timeouts,
        pytest.raises(RateLimitTimeout),
    ):
        _limiter([30.0]).acquire(MODEL, 10, deadline=0.0, clock=lambda: 0.0)
    assert timeouts == [1.0]


# --- File API ------------------------------------------------------------------------------


def test_file_uploads_and_reuses_are_counted(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    blobs = BlobStore(str(tmp_path / "blobs"))
    data = b"\x89PNG" + b"x" * 100
    sha = blobs.put(data)
    gemini = FakeGemini(lifetime=timedelta(hours=10))
    cache = UploadCache(
        sessions=sessions, gemini=cast(GeminiCaller, gemini), blobs=blobs, identity="m",
        policy=FilePolicy.from_settings(Settings()),
    )  # fmt: skip
    with (
        delta("visionq_file_uploads_total", outcome="uploaded") as uploaded,
        delta("visionq_file_uploads_total", outcome="reused") as reused,
        delta("visionq_file_upload_bytes_total") as sent,
    ):
        cache.uri_for(sha, "image/png", len(data))
        cache.uri_for(sha, "image/png", len(data))
        cache.uri_for(sha, "image/png", len(data))
    assert uploaded == [1.0] and reused == [2.0] and sent == [float(len(data))]

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise GeminiCallError("gemini_unavailable", "down", retryable=True)

    gemini.upload = refuse  # type: ignore[method-assign]
    other = blobs.put(b"\x89PNG" + b"y" * 100)
    with (
        delta("visionq_file_uploads_total", outcome="failed") as failed,
        pytest.raises(GeminiCallError),
    ):
        cache.uri_for(other, "image/png", 104)
    assert failed == [1.0]


# --- the Gemini batch lane -----------------------------------------------------------------


def test_batch_lines_are_counted_once_with_their_cost_and_ends(context: WorkerContext) -> None:
    row, ids = batch_of(context, 3)
    lines = [batch_line(ids[0], "A cat."), batch_line(ids[1], "A mat."),
             batch_line(ids[2], "A dog.")]  # fmt: skip
    price = context.costs.call_cost(BATCH_MODEL, BATCH_USAGE, tier=ServiceTier.BATCH)
    assert price is not None
    with (
        delta("visionq_gemini_batch_lines_total", model=BATCH_MODEL,
              outcome="succeeded") as stored,
        delta("visionq_cost_usd_total", tenant="t", model=BATCH_MODEL, tier="batch") as cost,
        delta("visionq_jobs_ended_total", tenant="t", task="caption", model=BATCH_MODEL,
              tier="batch", outcome="succeeded") as ends,
    ):  # fmt: skip
        store_outcomes(context, row, lines, context.settings)
        # The output read again (a resumed collection): nothing counts twice.
        store_outcomes(context, row, lines, context.settings)
    assert stored == [3.0] and ends == [3.0]
    assert cost[0] == pytest.approx(3 * to_nano(price) / 1e9, abs=1e-12)


def test_a_batch_twin_answered_from_the_cache_counts_a_hit_and_an_end(tmp_path: Path) -> None:
    lane = lane_context(tmp_path, min_requests=1, max_requests=20)
    try:
        first = twin_job(lane, "k1")
        with lane.sessions.begin() as session:  # served by the sync lane meanwhile, say
            session.execute(
                JOBS.update().where(JOBS.c.id == first)
                .values(status="succeeded", result={"text": "S"}, cost_nusd=9, lane="standard")
            )  # fmt: skip
        twin_job(lane, "k1")
        gatherer, _ = lane_steps(lane, fake_batches(tmp_path), tmp_path)
        labels = {"tenant": "t", "task": "caption", "model": TWIN_MODEL}
        with (
            delta("visionq_result_cache_hits_total", **labels, source="twin") as hits,
            delta("visionq_jobs_ended_total", **labels, tier="batch",
                  outcome="succeeded") as ends,
        ):  # fmt: skip
            assert gatherer.run_once().cached == 1
    finally:
        lane.close()
    assert hits == [1.0] and ends == [1.0]


def test_a_job_stopped_by_the_watchdog_counts_as_failed(tmp_path: Path) -> None:
    context = worker_context(tmp_path, job_deadline_s=0.5)
    try:

        def spin() -> str:
            while True:
                pass

        context.gemini = StandIn(spin)
        watchdog = Watchdog(context.sessions, context.leases, deadline_s=0.5, grace_s=0.2)
        job_id = watchdog_job(context)
        with delta("visionq_jobs_ended_total", **WATCHDOG_FAILED) as failed:
            run_in_thread(context, job_id, watchdog)
        watchdog.close()
    finally:
        context.close()
    assert failed == [1.0]


def test_a_job_given_up_after_its_deliveries_counts_as_failed_after_the_commit(
    context: WorkerContext,
) -> None:
    job_id = watchdog_job(context)
    with delta("visionq_jobs_ended_total", **WATCHDOG_FAILED) as failed:
        with (
            context.sessions.begin() as session,
            delta("visionq_jobs_ended_total", **WATCHDOG_FAILED) as before_commit,
        ):
            assert claim_job(session, job_id, lease_s=30, max_deliveries=0) is None
        # Review R11: not counted until the caller's transaction commits.
        assert before_commit == [0.0]
    assert failed == [1.0]


def test_a_job_given_up_in_a_transaction_rolled_back_is_not_counted(
    context: WorkerContext,
) -> None:
    job_id = watchdog_job(context)
    with delta("visionq_jobs_ended_total", **WATCHDOG_FAILED) as failed:
        with contextlib.suppress(RuntimeError), context.sessions.begin() as session:
            assert claim_job(session, job_id, lease_s=30, max_deliveries=0) is None
            raise RuntimeError("the caller's transaction fails after the claim")
        with context.sessions.begin() as session:  # the end committed now: counted once
            assert claim_job(session, job_id, lease_s=30, max_deliveries=0) is None
            assert failed == []  # (still inside the delta block)
    assert failed == [1.0]
