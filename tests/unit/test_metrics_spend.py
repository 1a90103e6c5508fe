"""Tokens and cost count in the metrics once per recorded call (review B3): a paid call is
counted when the transaction writing its attempt commits, not when it is added to a Spend,
so a batch line stored again after a database fault, or handled again on the crash path,
counts once and ``visionq_cost_usd_total`` stays equal to the database's cost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from tests.unit.test_batch_results import MODEL as BATCH_MODEL
from tests.unit.test_batch_results import USAGE as BATCH_USAGE
from tests.unit.test_batch_results import _batch as batch_of
from tests.unit.test_batch_results import _jobs as jobs_of
from tests.unit.test_batch_results import _line as batch_line
from tests.unit.test_worker_metrics import delta
from tests.unit.workercontext import worker_context
from visionq.models.outcomes import Usage
from visionq.vision.catalogue import ServiceTier
from visionq.vision.costing import to_nano
from visionq.worker import batch_results
from visionq.worker.batch_results import store_outcomes
from visionq.worker.context import WorkerContext
from visionq.worker.spend import Spend

MODEL = "gemini-3.6-flash"


@pytest.fixture
def context(tmp_path: Path) -> Iterator[WorkerContext]:
    built = worker_context(tmp_path)
    yield built
    built.close()


def _line_nusd(context: WorkerContext) -> int:
    price = context.costs.call_cost(BATCH_MODEL, BATCH_USAGE, tier=ServiceTier.BATCH)
    assert price is not None
    return to_nano(price)


def test_a_call_counts_when_recorded_and_once(context: WorkerContext) -> None:
    raw = {"promptTokenCount": 2000, "candidatesTokenCount": 50, "thoughtsTokenCount": 70}
    usage = Usage(prompt_tokens=2000, candidates_tokens=50, thoughts_tokens=70,
                  cached_tokens=None, total_tokens=2120, raw=raw)  # fmt: skip
    price = context.costs.call_cost(MODEL, raw, tier=ServiceTier.BATCH)
    assert price is not None
    spend = Spend(tenant="acme")
    with (
        delta("visionq_cost_usd_total", tenant="acme", model=MODEL, tier="batch") as added,
        delta("visionq_gemini_tokens_total", model=MODEL, tier="batch",
              kind="thinking") as thinking_added,
    ):  # fmt: skip
        spend.add(context, MODEL, usage, tier=ServiceTier.BATCH)
    assert added == [0.0] and thinking_added == [0.0]  # not recorded yet: not counted
    with (
        delta("visionq_cost_usd_total", tenant="acme", model=MODEL, tier="batch") as cost,
        delta("visionq_gemini_tokens_total", model=MODEL, tier="batch",
              kind="thinking") as thinking,
        delta("visionq_gemini_tokens_total", model=MODEL, tier="batch",
              kind="output") as output,
    ):  # fmt: skip
        spend.count_recorded()
        spend.count_recorded()  # a second commit of the same Spend counts nothing more
    assert cost[0] == pytest.approx(to_nano(price) / 1e9, abs=1e-12)
    assert thinking == [70.0] and output == [50.0]


def test_a_batch_line_stored_again_after_a_database_fault_counts_once(
    context: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    row, ids = batch_of(context, 1)
    lines = [batch_line(ids[0], "A cat.")]
    real = batch_results.complete_run
    calls: list[int] = []

    def locked_once(*args: Any, **kwargs: Any) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE jobs", {}, Exception("database is locked"))
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_results, "complete_run", locked_once)
    monkeypatch.setattr(batch_results, "_STORE_PATIENCE_S", 0.0)  # deferred at once
    labels = {"tenant": "t", "model": BATCH_MODEL, "tier": "batch"}
    with (
        delta("visionq_cost_usd_total", **labels) as cost,
        delta("visionq_gemini_tokens_total", model=BATCH_MODEL, tier="batch",
              kind="input") as tokens,
    ):  # fmt: skip
        assert store_outcomes(context, row, lines, context.settings)["deferred"] == 1
        assert store_outcomes(context, row, lines, context.settings)["stored"] == 1
    job = jobs_of(context, ids)[ids[0]]
    assert job.status == "succeeded" and job.cost_nusd == _line_nusd(context)
    assert cost[0] == pytest.approx(job.cost_nusd / 1e9, abs=1e-12)
    assert tokens == [BATCH_USAGE["promptTokenCount"]]


def test_a_batch_line_that_crashes_counts_its_cost_once(
    context: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    row, ids = batch_of(context, 1)

    def crash(spec: Any, text: str) -> Any:
        raise ValueError("a parser bug")

    monkeypatch.setattr(batch_results, "interpret", crash)
    with delta("visionq_cost_usd_total", tenant="t", model=BATCH_MODEL, tier="batch") as cost:
        counts = store_outcomes(context, row, [batch_line(ids[0], "odd")], context.settings)
    assert counts["failed"] == 1
    job = jobs_of(context, ids)[ids[0]]
    assert (job.status, job.error_code) == ("failed", "internal_error")
    assert job.cost_nusd == _line_nusd(context)
    assert cost[0] == pytest.approx(job.cost_nusd / 1e9, abs=1e-12)
