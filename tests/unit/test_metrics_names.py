"""Every metric of models/metrics.py follows Prometheus' conventions with bounded labels."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from visionq.models import metrics
from visionq.vision.catalogue import load_catalogue

DECLARED = {
    name: value
    for name, value in vars(metrics).items()
    if isinstance(value, MetricWrapperBase) and name.isupper()
}
UNITS = ("_seconds", "_bytes", "_usd", "_ratio")
# Metrics without a unit: counts of things.
UNITLESS = {
    "visionq_jobs_submitted", "visionq_jobs_ended", "visionq_result_cache_hits",
    "visionq_gemini_responses", "visionq_gemini_batch_lines", "visionq_retries",
    "visionq_ratelimit_timeouts", "visionq_gemini_tokens", "visionq_file_uploads",
    "visionq_webhook_deliveries", "visionq_webhook_events", "visionq_batches_ended",
    "visionq_webhook_events_unfannable",
    "visionq_metrics_collect_errors",
}  # fmt: skip
UNBOUNDED_LABELS = {"job_id", "id", "url", "message", "batch_id", "error", "key"}
# The one in-process gauge: the rate limiter's learned factor lives in Redis, shared by every
# worker, and each worker shows its latest reading (multiprocess_mode "mostrecent": one series
# per model and kind, no pid label). A factor (limit used / configured) has no unit.
IN_PROCESS_GAUGES = {"visionq_ratelimit_learned_factor"}


def test_the_pinned_metrics_are_all_declared() -> None:
    assert set(DECLARED) == {
        "JOBS_SUBMITTED", "JOBS_ENDED", "RESULT_CACHE_HITS", "JOB_QUEUED_SECONDS",
        "JOB_DURATION_SECONDS", "GEMINI_CALL_SECONDS", "GEMINI_RESPONSES", "GEMINI_BATCH_LINES",
        "RETRIES", "RATELIMIT_WAIT_SECONDS", "RATELIMIT_TIMEOUTS", "GEMINI_TOKENS", "COST_USD",
        "ESTIMATE_RATIO", "FILE_UPLOADS", "FILE_UPLOAD_BYTES", "WEBHOOK_DELIVERIES",
        "WEBHOOK_DELIVERY_SECONDS", "WEBHOOK_EVENTS", "WEBHOOK_EVENTS_UNFANNABLE", "BATCHES_ENDED",
        "COLLECT_ERRORS", "RATELIMIT_LEARNED_FACTOR",
    }  # fmt: skip


@pytest.mark.parametrize("attr", sorted(DECLARED))
def test_name_type_unit_and_labels_follow_the_conventions(attr: str) -> None:
    metric = DECLARED[attr]
    name = metric._name
    kind = metric._type
    assert re.fullmatch(r"visionq_[a-z][a-z0-9_]*[a-z0-9]", name), name
    assert not name.endswith("_total"), "prometheus-client appends _total to counters"
    if name in IN_PROCESS_GAUGES:
        assert kind == "gauge" and metric._multiprocess_mode == "mostrecent", name
    else:
        assert name.endswith(UNITS) or name in UNITLESS, f"{name}: a unit suffix or a count"
        assert kind in {"counter", "histogram"}, "gauges are computed at scrape, not in-process"
    if kind == "histogram":
        assert name.endswith(("_seconds", "_ratio")), name
    assert metric._documentation and metric._documentation.endswith(".")
    labels = metric._labelnames
    assert not set(labels) & UNBOUNDED_LABELS, f"{name} has an unbounded label"
    assert all(re.fullmatch(r"[a-z][a-z_]*", label) for label in labels)
    # Exposed names: counters as <name>_total, histograms with _bucket/_sum/_count, a gauge
    # as its name.
    exposed = {sample.name for family in metric.collect() for sample in family.samples}
    # A labelled metric has no series until a label set is used (tests run before this
    # one may have used some: the whole process shares the metrics).
    suffixes = {
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "counter": ("_total", "_created"),
        "gauge": ("",),
    }[kind]
    assert exposed <= {name + suffix for suffix in suffixes}
    if not labels and kind == "counter":
        assert exposed == {f"{name}_total", f"{name}_created"}


def test_every_name_is_declared_once_and_cluster_gauges_do_not_clash() -> None:
    names = [metric._name for metric in DECLARED.values()]
    assert len(names) == len(set(names))
    assert not set(metrics.CLUSTER_GAUGES) & set(names)
    for gauge in metrics.CLUSTER_GAUGES:
        assert re.fullmatch(r"visionq_[a-z_]+", gauge) and not gauge.endswith("_total")
    # The default registry holds them (importing twice did not declare them again).
    assert REGISTRY._names_to_collectors["visionq_jobs_submitted_total"] is metrics.JOBS_SUBMITTED


def test_model_labels_are_catalogue_ids_or_other() -> None:
    catalogue = load_catalogue()
    known = next(iter(catalogue.models))
    assert metrics.model_label(known) == known
    assert metrics.model_label(f"models/{known}") == known
    assert metrics.model_label("made-up-model-42") == metrics.OTHER_MODEL
    assert metrics.model_label("x" * 300) == metrics.OTHER_MODEL


class Ended(NamedTuple):
    tenant: str
    task: str
    model: str
    tier: str
    status: str
    created_at: datetime
    finished_at: datetime


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_count_helpers_map_models_and_observe_durations() -> None:
    model = next(iter(load_catalogue().models))
    base: dict[str, str] = {"tenant": "t-names", "task": "caption", "tier": "standard"}
    before = value("visionq_jobs_submitted_total", **base, model=model)
    other_before = value("visionq_jobs_submitted_total", **base, model="other")
    metrics.count_submitted(tenant="t-names", task="caption", model=model, tier="standard", n=3)
    metrics.count_submitted(tenant="t-names", task="caption", model="unknown-x", tier="standard")
    metrics.count_submitted(tenant="t-names", task="caption", model=model, tier="standard", n=0)
    assert value("visionq_jobs_submitted_total", **base, model=model) == before + 3
    assert value("visionq_jobs_submitted_total", **base, model="other") == other_before + 1

    now = datetime.now(UTC)
    ended = [
        Ended(**base, model=model, status="failed", created_at=now - timedelta(seconds=7),
              finished_at=now),
        Ended(**base, model=model, status="failed", created_at=now, finished_at=now),
    ]  # fmt: skip
    dur = {"task": "caption", "model": model, "tier": "standard", "outcome": "failed"}
    failed_before = value("visionq_jobs_ended_total", **base, model=model, outcome="failed")
    sum_before = value("visionq_job_duration_seconds_sum", **dur)
    metrics.count_ended(ended)
    assert value("visionq_jobs_ended_total", **base, model=model, outcome="failed") == (
        failed_before + 2
    )
    assert value("visionq_job_duration_seconds_sum", **dur) == pytest.approx(sum_before + 7)

    hits = {"tenant": "t-names", "task": "caption", "model": model, "source": "submit"}
    hits_before = value("visionq_result_cache_hits_total", **hits)
    ok = {**dur, "outcome": "succeeded"}
    zero_before = value("visionq_job_duration_seconds_bucket", **ok, le="0.5")
    metrics.count_cache_hits(tenant="t-names", task="caption", model=model, source="submit", n=2)
    metrics.count_born_succeeded(
        tenant="t-names", task="caption", model=model, tier="standard", n=2
    )
    assert value("visionq_result_cache_hits_total", **hits) == hits_before + 2
    assert value("visionq_job_duration_seconds_bucket", **ok, le="0.5") == zero_before + 2
