"""GET /metrics on the API and each worker's metrics port, parsed with prometheus-client's
own parser. In process: the route, its token and the OpenAPI document. On the process
stack (SQLite and PostgreSQL): an API with two uvicorn processes and workers after a run:
counts summed over every process (multiprocess mode), matching the database."""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from tests.integration.conftest import redis_db
from tests.integration.helpers import noise_png, scene_png, submit, wait_all
from tests.integration.inprocess import InProcessApi, in_process_api
from tests.integration.test_migration_race import empty_database
from tests.webhookrecv import Receiver
from visionq.cli.processes import visionq_command
from visionq.cli.stackbuild import StackBuilder
from visionq.models.db import make_engine
from visionq.models.metrics import CLUSTER_GAUGES
from visionq.models.tables import ATTEMPTS, JOBS
from visionq.models.webhook_tables import WebhookAttempt

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, have), value in samples.items()
        if sample == name and labels.items() <= dict(have).items()
    )


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[InProcessApi]:
    with in_process_api(
        Path(tmp_path_factory.mktemp("metrics-token")), redis_db(redis_url), ("acme",),
        metrics_token="scrape-me",
    ) as app:  # fmt: skip
        yield app


def test_metrics_are_open_by_default_and_parse(api: InProcessApi) -> None:
    with api.client(tenant=None) as client:
        answer = client.get("/metrics")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        samples = parse(answer.text)
        names = {name for name, _ in samples}
        # Budgets: only tenants with a cap; failing: only tenants with a failing endpoint.
        conditional = {"visionq_budget_spent_usd", "visionq_budget_cap_usd",
                       "visionq_webhook_failing_seconds"}  # fmt: skip
        assert set(CLUSTER_GAUGES) - conditional <= names
        assert total(samples, "visionq_queue_jobs", lane="standard") >= 0
        # Not part of the jobs API: left out of the OpenAPI document (and its fuzzing).
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_a_metrics_token_is_required_once_set(guarded: InProcessApi) -> None:
    with guarded.client(tenant=None) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        assert "VISIONQ_METRICS_TOKEN" in refused.json()["error"]["message"]
        assert refused.headers["www-authenticate"] == "Bearer"
        # An API key is not the metrics token.
        api_key = {"Authorization": f"Bearer {guarded.keys['acme']}"}
        assert client.get("/metrics", headers=api_key).status_code == 401
        allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert allowed.status_code == 200
        assert "visionq_queue_jobs" in {name for name, _ in parse(allowed.text)}


def counted(name: str, **labels: str) -> float:
    """This process's value (the in-process app counts in the test's own registry)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_api_counts_submits_and_cancels_once_committed(api: InProcessApi) -> None:
    # No worker here: the jobs stay queued, so cancelling ends each one.
    model = "gemini-3.5-flash-lite"
    job = {"tenant": "acme", "task": "caption", "model": model, "tier": "standard"}
    ended = {**job, "outcome": "cancelled"}
    before = counted("visionq_jobs_submitted_total", **job)
    before_ended = counted("visionq_jobs_ended_total", **ended)
    with api.client() as test_client:
        client = cast(httpx.Client, test_client)  # TestClient is an httpx.Client
        image, _ = scene_png(7, width=96, height=96, count=1)
        first = submit(client, image, task="caption", model=model)
        assert first.status_code == 202, first.text
        # A refused submit (bad model) and a replayed Idempotency-Key store no new job.
        assert submit(client, image, task="caption", model="no-such").status_code == 422
        again = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
        for _ in range(2):
            replay = client.post(
                "/v1/jobs", headers=again, data={"task": "caption", "model": model},
                files=[("image", ("a.png", image, "image/png"))],
            )  # fmt: skip
            assert replay.status_code == 202
        assert counted("visionq_jobs_submitted_total", **job) == before + 2
        cancelled = client.post(f"/v1/jobs/{first.json()['id']}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        # Cancelling an ended job changes nothing, and counts nothing.
        client.post(f"/v1/jobs/{first.json()['id']}/cancel")
        assert counted("visionq_jobs_ended_total", **ended) == before_ended + 1

        # A batch: its items counted as submitted once added, cancelled with the batch.
        batch = {**job, "tier": "standard"}
        before = counted("visionq_jobs_submitted_total", **batch)
        created = client.post(
            "/v1/batches", json={"name": f"m-{uuid.uuid4().hex[:8]}", "task": "caption",
                                 "model": model},
        )  # fmt: skip
        batch_id = created.json()["id"]
        items = [
            {"key": f"{n}.png", "images": [{"data": base64.b64encode(
                scene_png(n, width=96, height=96, count=1)[0]).decode()}]}
            for n in range(3)
        ]  # fmt: skip
        added = client.post(f"/v1/batches/{batch_id}/items", json={"items": items})
        assert added.status_code == 200, added.text
        assert counted("visionq_jobs_submitted_total", **batch) == before + 3
        ended_before = counted("visionq_jobs_ended_total", **ended)
        assert client.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
        assert counted("visionq_jobs_ended_total", **ended) == ended_before + 3
        duration = {"task": "caption", "model": model, "tier": "standard", "outcome": "cancelled"}
        assert counted("visionq_job_duration_seconds_count", **duration) >= 4


@dataclass
class MetricsStack:
    builder: StackBuilder
    api_url: str
    gemini_url: str
    tenant: str
    key: str

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )


WORKERS = ("metrics-threads", "metrics-prefork")
# Gemini answers a quarter of the calls 429 (per-minute quota), retried at once.
EMULATOR_FLAGS = ["--fail-429-rate", "0.25", "--fault-seed", "21", "--retry-delay-s", "0.05"]


@pytest.fixture(scope="module")
def metrics_stack(workdir: Path, database_url: str, redis_url: str) -> Iterator[MetricsStack]:
    """An API of two uvicorn processes, a threads worker and a prefork worker (two pool
    processes): every count must add up over the five processes. Its own emulator (the
    witness of the Gemini calls) and its own empty database of the session's kind (another
    stack's worker on a shared database would relay and send this tenant's webhooks, and
    count them in its own metrics); a tenant with a daily cap (the budget gauges); images
    over 64 KiB go by the File API."""
    backend = database_url.split(":", 1)[0]
    tenant = f"metrics-{backend}-{uuid.uuid4().hex[:6]}"
    folder = workdir / f"metrics-{backend}"
    folder.mkdir()
    builder = StackBuilder(
        folder, database_url=empty_database(database_url, folder),
        extra_env={
            "VISIONQ_INLINE_LIMIT_BYTES": str(64 * 1024), "VISIONQ_RETRY_BASE_S": "0.05",
            # The webhook receiver listens on 127.0.0.2 (allowed like a public host).
            "VISIONQ_URL_FETCH_ALLOWED_NETWORKS": '["127.0.0.2/32"]',
            "VISIONQ_WEBHOOK_RETRY_DELAYS_S": "[0.2]", "VISIONQ_WEBHOOK_RETRY_WINDOW_S": "60",
            "VISIONQ_WEBHOOK_POLL_S": "0.2",
        },
    )  # fmt: skip
    builder.use_redis(redis_db(redis_url))
    try:
        gemini_url = builder.start_own_emulator(EMULATOR_FLAGS)
        builder.migrate()
        run_cli(builder, "budgets", "set", tenant, "--daily", "5")
        key = run_cli(builder, "keys", "create", "metrics", "--tenant", tenant)
        api_url = builder.start_api(name="metrics-api", args=["--workers", "2"])
        builder.start_worker(name="metrics-threads", concurrency=8)
        builder.start_worker(name="metrics-prefork", concurrency=2, pool="prefork")
        yield MetricsStack(builder, api_url, gemini_url, tenant, key)
    finally:
        builder.stop()


def run_cli(builder: StackBuilder, *args: str) -> str:
    done = subprocess.run(
        visionq_command(*args), env=builder.env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def scrape(url: str) -> Samples:
    answer = httpx.get(url, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


def add(*scrapes: Samples) -> Samples:
    """Samples summed over targets, as Prometheus' sum() does."""
    summed: Samples = {}
    for samples in scrapes:
        for key, value in samples.items():
            summed[key] = summed.get(key, 0.0) + value
    return summed


def webhook_attempts_truth(database_url: str, endpoint_id: str) -> dict[str, int]:
    """The endpoint's delivery log in the database: attempts by outcome."""
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(WebhookAttempt.outcome, func.count())
                .where(WebhookAttempt.endpoint_id == endpoint_id)
                .group_by(WebhookAttempt.outcome)
            ).all()
    finally:
        engine.dispose()
    return {str(outcome): int(count) for outcome, count in rows}


def database_truth(database_url: str, tenant: str) -> tuple[dict[str, int], int, int]:
    """(jobs by status, attempts, cost in nano-dollars) of ``tenant`` in the database."""
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            statuses: dict[str, int] = dict(
                connection.execute(
                    select(JOBS.c.status, func.count())
                    .where(JOBS.c.tenant == tenant)
                    .group_by(JOBS.c.status)
                ).all()
            )
            attempts = connection.execute(
                select(func.count())
                .select_from(ATTEMPTS.join(JOBS, ATTEMPTS.c.job_id == JOBS.c.id))
                .where(JOBS.c.tenant == tenant)
            ).scalar_one()
            cost = connection.execute(
                select(func.coalesce(func.sum(JOBS.c.cost_nusd), 0)).where(JOBS.c.tenant == tenant)
            ).scalar_one()
    finally:
        engine.dispose()
    return {str(k): int(v) for k, v in statuses.items()}, int(attempts), int(cost)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver answering its first two requests 500, then 204."""
    with Receiver([], host="127.0.0.2", script=lambda n: 500 if n <= 2 else 204) as got:
        yield got


def test_a_run_adds_up_over_every_process(metrics_stack: MetricsStack, receiver: Receiver) -> None:
    stack, tenant = metrics_stack, metrics_stack.tenant
    model = "gemini-3.5-flash-lite"
    with stack.client() as client:
        endpoint = client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["job.succeeded", "job.cancelled"]}
        )
        assert endpoint.status_code == 201, endpoint.text
        receiver.secrets.append(endpoint.json()["secret"])
        endpoint_id = endpoint.json()["id"]
        images = [scene_png(seed, width=96, height=96, count=1)[0] for seed in range(12)]
        images.append(noise_png(5, 160))  # ~75 KiB: over the inline limit, by the File API
        ids = [submit(client, image, task="caption", model=model).json()["id"] for image in images]
        jobs = wait_all(client, ids)
        assert all(job["status"] == "succeeded" for job in jobs)
        # The same image and task again: answered from the result cache.
        hit = submit(client, images[0], task="caption", model=model).json()
        assert hit["status"] == "succeeded"
        # A batch-tier job waits for the batch lane (its minimum is far away): cancelled.
        fresh = scene_png(99, width=96, height=96, count=1)[0]
        waiting = submit(client, fresh, task="caption", model=model, options={"tier": "batch"})
        assert waiting.status_code == 202, waiting.text
        cancelled = client.post(f"/v1/jobs/{waiting.json()['id']}/cancel").json()
        assert cancelled["status"] == "cancelled"
    ran, submitted = len(images), len(images) + 2
    # Each scrape is served by either API process; multiprocess mode makes every one see
    # every process's counts (in memory, a process would see only the POSTs it served).
    api = f"{stack.api_url}/metrics"
    for _ in range(8):
        samples = scrape(api)
        assert total(samples, "visionq_jobs_submitted_total", tenant=tenant) == submitted
        assert total(samples, "visionq_result_cache_hits_total", tenant=tenant) == 1
        assert total(samples, "visionq_jobs_ended_total", tenant=tenant, outcome="cancelled") == 1
        # The cache hit ended succeeded at its submit, counted by the API.
        assert total(samples, "visionq_jobs_ended_total", tenant=tenant, outcome="succeeded") == 1
    assert total(samples, "visionq_jobs_submitted_total", tenant=tenant, tier="batch") == 1
    # (No endpoint fails here: that gauge has a series per tenant with a failing endpoint.)
    assert set(CLUSTER_GAUGES) - {"visionq_webhook_failing_seconds"} <= {n for n, _ in samples}
    assert total(samples, "visionq_broker_messages", queue="visionq.jobs") == 0
    assert total(samples, "visionq_budget_cap_usd", tenant=tenant, period="day") == 5

    # Each worker serves its own processes' metrics (the prefork one: its two children's),
    # and never the cluster gauges: sum() over targets counts a gauge once.
    workers = [scrape(stack.builder.metrics_url(name)) for name in WORKERS]
    for worker in workers:
        names = {sample for sample, _ in worker}
        assert not set(CLUSTER_GAUGES) & names
        assert "visionq_jobs_submitted_total" not in names  # the API's alone
    assert total(workers[1], "visionq_jobs_ended_total", tenant=tenant) > 0, "prefork counted"
    everything = add(samples, *workers)

    # Against the database: jobs by outcome, cost.
    statuses, attempts, cost_nusd = database_truth(stack.builder.database_url, tenant)
    for outcome in ("succeeded", "failed", "cancelled"):
        counted_here = total(everything, "visionq_jobs_ended_total", tenant=tenant, outcome=outcome)
        assert counted_here == statuses.get(outcome, 0), outcome
    assert total(everything, "visionq_cost_usd_total", tenant=tenant) == pytest.approx(
        cost_nusd / 1e9, abs=1e-9
    )
    assert total(samples, "visionq_budget_spent_usd", tenant=tenant, period="day") == (
        pytest.approx(cost_nusd / 1e9, abs=1e-9)
    )
    assert total(everything, "visionq_job_queued_seconds_count", model=model) >= ran
    # Against the emulator (the witness of what Gemini answered).
    seen = httpx.get(f"{stack.gemini_url}/_emulator/stats", timeout=10).json()
    generate = {"call": "generate", "model": model}
    assert seen["faults"].get("429", 0) > 0, "the run met 429s"
    assert total(everything, "visionq_gemini_responses_total", **generate, code="429",
                 quota_class="per_minute") == seen["faults"]["429"]  # fmt: skip
    assert (
        total(everything, "visionq_gemini_responses_total", **generate, code="200")
        == (seen["answered_ok"])
    )
    assert seen["generate_calls"] == attempts
    assert total(everything, "visionq_retries_total", model=model) == attempts - ran
    assert (
        total(everything, "visionq_file_uploads_total", outcome="uploaded")
        == (seen["uploads_completed"])
    )
    assert total(everything, "visionq_file_upload_bytes_total") == seen["upload_bytes"]
    tokens = total(everything, "visionq_gemini_tokens_total", model=model, kind="input")
    assert tokens > 0

    # Webhooks: every job's event delivered (the first two attempts answered 500), and the
    # attempts counted by outcome as the delivery log recorded them. (Not as the receiver
    # saw them: at least once, a 204 answered after the sender's deadline is a `timeout`
    # attempt there and a delivery here.)
    receiver.wait_for(lambda got: len({r.subject_id for r in got if r.ok}) == submitted, 60)
    deadline = time.monotonic() + 30
    while True:
        logged = webhook_attempts_truth(stack.builder.database_url, endpoint_id)
        hooks = add(*(scrape(stack.builder.metrics_url(name)) for name in WORKERS))
        counted = {
            outcome: total(
                hooks, "visionq_webhook_deliveries_total", tenant=tenant, outcome=outcome
            )
            for outcome in logged
        }
        if counted == logged or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert counted == logged
    assert logged["succeeded"] >= submitted and logged["http_error"] == 2, logged
    delivered = logged["succeeded"]
    assert total(hooks, "visionq_webhook_delivery_seconds_count") >= delivered + 2
