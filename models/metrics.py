"""Every Prometheus metric of visionq, declared once per process (README "Monitoring").

prometheus-client's multiprocess mode (several uvicorn workers, prefork Celery children)
keeps each series in a per-process mmap file keyed by name and labels; two metric objects
for the same series in one process would each overwrite the other's value. So every metric
is a module-level object here, the only instance (a second process-global besides the
Celery app), and api/ and worker/ import these names. Values in tests are read as deltas
from ``prometheus_client.REGISTRY``.

``PROMETHEUS_MULTIPROC_DIR`` must be set before this module is first imported in a process
that shares metrics with others: :func:`visionq.models.metrics_expose.prepare_multiprocess`
does it for ``visionq api`` and ``visionq worker``.

Label values stay bounded: tenants (API keys' tenants), task kinds, catalogue model ids
(anything else is ``other``, see :func:`model_label`), the five tiers, enumerated outcomes
and codes. No job ids, URLs or messages.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from visionq.vision.catalogue import Catalogue, load_catalogue

PREFIX = "visionq"
# A model id the catalogue does not know (VISIONQ_ALLOW_UNKNOWN_MODELS) becomes this label.
OTHER_MODEL = "other"
# Job outcomes (terminal statuses) as labels.
JOB_OUTCOMES = ("succeeded", "failed", "cancelled")
# GeminiCallError.quota_class values, and "none" for a response that is not a 429.
QUOTA_CLASSES = ("per_minute", "per_day", "spend", "help_only", "none")
# RESULT_CACHE_HITS sources.
CACHE_SOURCES = ("submit", "batch_add", "rerun", "twin")

JOB_QUEUED_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800,
                      3600, 7200, 21600, 86400)  # fmt: skip
JOB_DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200,
                        21600, 86400)  # fmt: skip
GEMINI_CALL_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 900)
RATELIMIT_WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Fine around 1 (input tokens are usually exact: an exact estimate must read 1.00, not the
# middle of (0.9, 1]; a 2 % miss must show), coarse from 0.01 to 10 (cost compares with the
# estimate's upper bound, output up to its cap: ratios of 0.01..0.3 are normal).
ESTIMATE_RATIO_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.85, 0.9, 0.95,
                          0.98, 0.995, 1.0, 1.005, 1.02, 1.05, 1.1, 1.15, 1.2, 1.25, 1.5, 2, 3,
                          5, 10)  # fmt: skip
WEBHOOK_DELIVERY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30)

# Jobs. (prometheus-client adds `_total` to a counter's name.)
JOBS_SUBMITTED = Counter(
    f"{PREFIX}_jobs_submitted",
    "Jobs accepted (one per job row: single submits, batch adds, re-runs, retries).",
    ["tenant", "task", "model", "tier"],
)
JOBS_ENDED = Counter(
    f"{PREFIX}_jobs_ended",
    "Jobs that reached a terminal status, by outcome (cache hits count as succeeded).",
    ["tenant", "task", "model", "tier", "outcome"],
)
RESULT_CACHE_HITS = Counter(
    f"{PREFIX}_result_cache_hits",
    "Jobs answered from the result cache without a Gemini call, by where it was found.",
    ["tenant", "task", "model", "source"],
)
JOB_QUEUED_SECONDS = Histogram(
    f"{PREFIX}_job_queued_seconds",
    "Time from submit to the first start (sync lanes) or to joining a Gemini batch.",
    ["lane", "model"],
    buckets=JOB_QUEUED_BUCKETS,
)
JOB_DURATION_SECONDS = Histogram(
    f"{PREFIX}_job_duration_seconds",
    "Time from submit to the job's end (cache hits: 0).",
    ["task", "model", "tier", "outcome"],
    buckets=JOB_DURATION_BUCKETS,
)

# Gemini.
GEMINI_CALL_SECONDS = Histogram(
    f"{PREFIX}_gemini_call_seconds",
    "Time of one Gemini API call (one attempt), by call kind and outcome (ok, error).",
    ["model", "tier", "call", "outcome"],
    buckets=GEMINI_CALL_BUCKETS,
)
GEMINI_RESPONSES = Counter(
    f"{PREFIX}_gemini_responses",
    "Gemini API responses by HTTP status (or timeout, unreachable) and 429 quota class.",
    ["model", "tier", "call", "code", "quota_class"],
)
GEMINI_BATCH_LINES = Counter(
    f"{PREFIX}_gemini_batch_lines",
    "Lines of Gemini batches stored, by outcome (succeeded, failed, released, discarded).",
    ["model", "outcome"],
)
RETRIES = Counter(
    f"{PREFIX}_retries",
    "Job attempts retried, by the error code of the failed attempt.",
    ["model", "tier", "reason"],
)
RATELIMIT_WAIT_SECONDS = Histogram(
    f"{PREFIX}_ratelimit_wait_seconds",
    "Time a call waited for the shared rate limiter before it was admitted.",
    ["model"],
    buckets=RATELIMIT_WAIT_BUCKETS,
)
RATELIMIT_TIMEOUTS = Counter(
    f"{PREFIX}_ratelimit_timeouts",
    "Calls the shared rate limiter could not admit before the job's deadline.",
    ["model"],
)
RATELIMIT_LEARNED_FACTOR = Gauge(
    f"{PREFIX}_ratelimit_learned_factor",
    "The factor Gemini's 429s taught the shared rate limiter (limit used = configured x "
    "factor; 1 = the configured quota), as this worker last read it.",
    ["model", "kind"],
    # One value per model and kind, not one per process (no pid label): the factor lives in
    # Redis, shared by every worker; the latest reading is the one to show.
    multiprocess_mode="mostrecent",
)
GEMINI_TOKENS = Counter(
    f"{PREFIX}_gemini_tokens",
    "Tokens of paid Gemini calls by kind (input, output, thinking, cached).",
    ["model", "tier", "kind"],
)
COST_USD = Counter(
    f"{PREFIX}_cost_usd",
    "Cost of paid Gemini calls in US dollars (by the model catalogue's prices).",
    ["tenant", "model", "tier"],
)
ESTIMATE_RATIO = Histogram(
    f"{PREFIX}_estimate_ratio",
    "Per succeeded job: input tokens / their estimate (quantity input_tokens), cost / the "
    "estimate's upper bound held against the budget (quantity cost).",
    ["task", "model", "quantity"],
    buckets=ESTIMATE_RATIO_BUCKETS,
)
FILE_UPLOADS = Counter(
    f"{PREFIX}_file_uploads",
    "Images sent by File API reference: uploaded, reused (a live upload found) or failed.",
    ["outcome"],
)
FILE_UPLOAD_BYTES = Counter(
    f"{PREFIX}_file_upload_bytes",
    "Bytes uploaded to the Gemini File API.",
)

# Webhooks and batches.
WEBHOOK_DELIVERIES = Counter(
    f"{PREFIX}_webhook_deliveries",
    "Webhook delivery attempts by outcome "
    "(succeeded, http_error, timeout, network_error, refused, gone, lost, internal_error).",
    ["tenant", "event_type", "outcome"],
)
WEBHOOK_DELIVERY_SECONDS = Histogram(
    f"{PREFIX}_webhook_delivery_seconds",
    "Time of one webhook delivery attempt.",
    ["outcome"],
    buckets=WEBHOOK_DELIVERY_BUCKETS,
)
WEBHOOK_EVENTS = Counter(
    f"{PREFIX}_webhook_events",
    "Webhook events fanned out to endpoints, by event type.",
    ["event_type"],
)
# No label: an event that cannot be fanned out may carry a type this version does not know.
WEBHOOK_EVENTS_UNFANNABLE = Counter(
    f"{PREFIX}_webhook_events_unfannable",
    "Webhook events that could not be fanned out (unknown type, rows the database refused): "
    "stamped without deliveries and logged.",
)
BATCHES_ENDED = Counter(
    f"{PREFIX}_batches_ended",
    "User batches whose every job ended, by the batch's state (closed, cancelled).",
    ["state"],
)
COLLECT_ERRORS = Counter(
    f"{PREFIX}_metrics_collect_errors",
    "Scrapes whose cluster gauges could not be computed, by source (sql, redis).",
    ["source"],
)

# Gauges the API's ClusterCollector computes at scrape (models/metrics_cluster.py); not
# declared as objects: a gauge's value is the database's, never a process's.
CLUSTER_GAUGES: tuple[str, ...] = (
    f"{PREFIX}_queue_jobs",
    f"{PREFIX}_queue_oldest_age_seconds",
    f"{PREFIX}_running_jobs",
    f"{PREFIX}_broker_messages",
    f"{PREFIX}_gemini_batches",
    f"{PREFIX}_batches",
    f"{PREFIX}_webhook_pending_deliveries",
    f"{PREFIX}_webhook_oldest_pending_age_seconds",
    f"{PREFIX}_webhook_endpoints",
    f"{PREFIX}_webhook_failing_seconds",
    f"{PREFIX}_budget_spent_usd",
    f"{PREFIX}_budget_cap_usd",
)


class JobLabelsLike(Protocol):
    """A job's fields its metric labels come from (the model is labelled by
    :func:`model_label`)."""

    @property
    def tenant(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def tier(self) -> str: ...


class EndedLike(JobLabelsLike, Protocol):
    """What :func:`count_ended` reads of an ended job (models/ended.py's EndedJob)."""

    @property
    def status(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def finished_at(self) -> datetime: ...


class _ModelLabels:
    """Catalogue ids by model id, for labels (one per process, like the metrics)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalogue: Catalogue | None = None

    def use(self, catalogue: Catalogue) -> None:
        with self._lock:
            self._catalogue = catalogue
        self.label.cache_clear()

    @functools.lru_cache(maxsize=512)  # noqa: B019 - one instance, alive for the process
    def label(self, model: str) -> str:
        with self._lock:
            if self._catalogue is None:
                self._catalogue = load_catalogue()
            catalogue = self._catalogue
        found = catalogue.lookup(model)
        return found[0] if found else OTHER_MODEL


_MODEL_LABELS = _ModelLabels()


def use_catalogue(catalogue: Catalogue) -> None:
    """Label models by this catalogue (the process's, with VISIONQ_MODELS_FILE applied);
    until called, the packaged catalogue is used."""
    _MODEL_LABELS.use(catalogue)


def model_label(model: str) -> str:
    """The label of a model id: its catalogue id (a versioned id maps to its entry), or
    ``other`` for an id the catalogue does not know, so callers cannot mint label values."""
    return _MODEL_LABELS.label(model)


def count_submitted(*, tenant: str, task: str, model: str, tier: str, n: int = 1) -> None:
    """Count ``n`` job rows accepted (call after the commit that stored them)."""
    if n > 0:
        JOBS_SUBMITTED.labels(tenant, task, model_label(model), tier).inc(n)


def count_cache_hits(*, tenant: str, task: str, model: str, source: str, n: int = 1) -> None:
    """Count ``n`` jobs answered from the result cache (``source``: submit, batch_add,
    rerun, twin). Only the hits: a job born succeeded is also counted as ended, by
    :func:`count_born_succeeded` (or :func:`count_ended` when an EndedJob exists)."""
    if n > 0:
        RESULT_CACHE_HITS.labels(tenant, task, model_label(model), source).inc(n)


def count_born_succeeded(*, tenant: str, task: str, model: str, tier: str, n: int = 1) -> None:
    """Count ``n`` jobs stored already succeeded (cache hits at submit, batch add, re-run)
    as ended: outcome succeeded, duration 0."""
    if n <= 0:
        return
    label = model_label(model)
    JOBS_ENDED.labels(tenant, task, label, tier, "succeeded").inc(n)
    duration = JOB_DURATION_SECONDS.labels(task, label, tier, "succeeded")
    for _ in range(n):
        duration.observe(0.0)


def count_new_job(
    *, tenant: str, task: str, model: str, tier: str, cache_hit: bool, source: str
) -> None:
    """Count one job row the API stored (call after its commit): submitted, and when it was
    born succeeded from the result cache, a cache hit (``source``) ended at once."""
    _count_stored(tenant, task, model, tier, stored=1, hits=int(cache_hit), source=source)


def _count_stored(
    tenant: str, task: str, model: str, tier: str, *, stored: int, hits: int, source: str
) -> None:
    # ``stored`` rows of one label set accepted, ``hits`` of them born succeeded from the cache.
    count_submitted(tenant=tenant, task=task, model=model, tier=tier, n=stored)
    count_cache_hits(tenant=tenant, task=task, model=model, source=source, n=hits)
    count_born_succeeded(tenant=tenant, task=task, model=model, tier=tier, n=hits)


class NewRowLike(JobLabelsLike, Protocol):
    """What :func:`count_new_rows` reads of a stored job row (models/batchjobs.NewJobRow)."""

    @property
    def cached(self) -> object | None: ...


def count_new_rows(rows: Iterable[NewRowLike], *, source: str) -> None:
    """:func:`count_new_job` for rows inserted together (a batch add or re-run page), one
    increment per label set."""
    groups: dict[tuple[str, str, str, str], list[int]] = {}
    for row in rows:
        group = groups.setdefault((row.tenant, row.task, row.model, row.tier), [0, 0])
        group[0] += 1
        group[1] += row.cached is not None
    for (tenant, task, model, tier), (stored, hits) in groups.items():
        _count_stored(tenant, task, model, tier, stored=stored, hits=hits, source=source)


def count_ended(ended: Iterable[EndedLike]) -> None:
    """Count jobs that just ended (call after the transaction that ended them commits):
    JOBS_ENDED by outcome and JOB_DURATION_SECONDS from submit to the end."""
    for job in ended:
        label = model_label(job.model)
        JOBS_ENDED.labels(job.tenant, job.task, label, job.tier, job.status).inc()
        seconds = (job.finished_at - job.created_at).total_seconds()
        JOB_DURATION_SECONDS.labels(job.task, label, job.tier, job.status).observe(
            max(seconds, 0.0)
        )


# Session.info keys of count_ended_on_commit: the ends waiting for the commit.
_PENDING_ENDS = "visionq_pending_ends"


def count_ended_on_commit(session: Session, ended: Iterable[EndedLike]) -> None:
    """Count jobs ended inside ``session``'s transaction when it commits (never on a
    rollback): for a repository function whose caller owns the transaction."""
    jobs = list(ended)
    if not jobs:
        return
    if _PENDING_ENDS not in session.info:
        session.info[_PENDING_ENDS] = []
        event.listen(session, "after_commit", _count_pending_ends)
        event.listen(session, "after_transaction_end", _drop_pending_ends)
    session.info[_PENDING_ENDS].extend(jobs)


def _count_pending_ends(session: Session) -> None:
    pending, session.info[_PENDING_ENDS] = session.info[_PENDING_ENDS], []
    count_ended(pending)


def _drop_pending_ends(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without a commit (a rollback): its ends never happened.
    if transaction.parent is None:
        session.info[_PENDING_ENDS] = []
