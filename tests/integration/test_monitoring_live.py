"""A real Prometheus (Debian's package) scrapes a running visionq stack with the checked-in
config and rules (tests/monitoring/promconfig.py renders them with this stack's targets);
after a run every query of the Grafana dashboard returns data.

The stack (SQLite, its own emulator, API with two processes, one worker): 429s per minute
then spend-limit 429s from the emulator, a shared rate limit small enough to wait, images
over the inline limit (File API), repeats (result cache), a Gemini batch of four
``tier=batch`` jobs, a cancel, a user batch, a budget cap and a webhook receiver that
answers 500 to six of its deliveries; all of it twice (rate() needs a series' second
sample). Then every dashboard expr is evaluated with ``/api/v1/query``: a non-empty result
with a number. The per-panel expr -> value report
is written to $VISIONQ_MONITOR_REPORT (default: a file in the test's tmp dir; its path is
printed). Every alert rule's expr is evaluated too (valid; its values are reported).
``promtool check metrics`` lints the raw text of both endpoints.

Skipped without prometheus/promtool unless VISIONQ_REQUIRE_PROMETHEUS=1 (CI), then it fails.
"""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import GEMINI_KEY, _create_key, redis_db
from tests.integration.helpers import TERMINAL, noise_png, scene_png, submit, wait_all
from tests.monitoring.promconfig import alert_exprs, binary, dashboard_exprs, render
from tests.webhookrecv import Receiver
from visionq.cli.processes import free_port, http_ok, visionq_command
from visionq.cli.stackbuild import StackBuilder

pytestmark = pytest.mark.integration

TENANT = "acme"
SYNC_MODEL = "gemini-3.6-flash"
BATCH_MODEL = "gemini-3.8-flash"
OTHER_BATCH_MODEL = "gemini-3.5-flash-lite"
SCRAPE_S = 1
# The receiver answers 500 to these deliveries (by arrival): failed attempts, retried.
RECEIVER_FAILURES = frozenset({1, 2, 3, 31, 32, 33})
REPORT_VARIABLE = "VISIONQ_MONITOR_REPORT"


@dataclass
class Monitored:
    builder: StackBuilder
    api_url: str
    worker_metrics_url: str
    key: str
    prometheus_url: str
    emulator_url: str
    receiver: Receiver

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=30)

    def query(self, expr: str) -> dict[str, Any]:
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr})
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Monitored]:
    prometheus, _ = binary("prometheus"), binary("promtool")
    here = tmp_path_factory.mktemp("monitoring")
    builder = StackBuilder(here, database_url=f"sqlite:///{here / 'visionq.db'}", extra_env={
        "VISIONQ_BLOB_DIR": str(here / "blobs"),
        # The webhook receiver listens on 127.0.0.2, standing for a public host.
        "VISIONQ_URL_FETCH_ALLOWED_NETWORKS": '["127.0.0.2/32"]',
        # Small enough that calls wait for the shared limiter.
        "VISIONQ_RATE_LIMITS": '{"*": {"rpm": 8, "window_s": 1}}',
        # The smallest inline limit: the large images go through the File API.
        "VISIONQ_INLINE_LIMIT_BYTES": str(64 * 1024),
        "VISIONQ_BATCH_MIN_REQUESTS": "4",
        "VISIONQ_BATCH_POLL_S": "1",
        "VISIONQ_BATCH_GATHER_S": "60",
        "VISIONQ_SWEEP_INTERVAL_S": "1",
        "VISIONQ_WEBHOOK_RETRY_DELAYS_S": "[0.2, 0.5, 1]",
        "VISIONQ_WEBHOOK_RETRY_WINDOW_S": "120",
        "VISIONQ_WEBHOOK_POLL_S": "0.2",
        "VISIONQ_METRICS_CACHE_S": "0.5",
    })  # fmt: skip
    receiver = Receiver([], host="127.0.0.2", script=_receiver_script)
    try:
        builder.use_redis(redis_db(redis_url))
        emulator = builder.start_emulator(
            ["--fail-429-rate", "0.3", "--retry-delay-s", "0.2", "--fault-seed", "21",
             "--file-processing-s", "0", "--batch-pending-s", "0.3",
             "--batch-lines-per-s", "0"],
            name="mon-emulator", key=GEMINI_KEY,
        )  # fmt: skip
        builder.use_gemini(emulator, GEMINI_KEY)
        builder.migrate()
        key = _create_key(builder.env, TENANT)
        subprocess.run(
            visionq_command("budgets", "set", TENANT, "--daily", "100"),
            env=builder.env, check=True, capture_output=True,
        )  # fmt: skip
        api_url = builder.start_api(name="mon-api", args=["--workers", "2"])
        builder.start_worker(name="mon-worker", concurrency=8)
        worker_url = builder.metrics_url("mon-worker")
        prometheus_url = _start_prometheus(builder, prometheus, here, api_url, worker_url)
        yield Monitored(builder, api_url, worker_url, key, prometheus_url, emulator, receiver)
    finally:
        receiver.close()
        builder.stop()


def _receiver_script(n: int) -> int:
    return 500 if n in RECEIVER_FAILURES else 204


def _target(url: str) -> str:
    """host:port of a URL."""
    return httpx.URL(url).netloc.decode()


def _start_prometheus(
    builder: StackBuilder, prometheus: str, here: Path, api_url: str, worker_url: str
) -> str:
    """Prometheus on a port and tsdb of its own (never the package's service on :9090)."""
    config = here / "prometheus.yml"
    config.write_text(
        render(_target(api_url), [_target(worker_url)], interval_s=SCRAPE_S), encoding="utf-8"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        prometheus, f"--config.file={config}", f"--storage.tsdb.path={here / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d",
    ]  # fmt: skip
    builder.start("prometheus", args, lambda: http_ok(f"{url}/-/ready"))
    return url


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        time.sleep(0.2)


def _faults(stack: Monitored, **changes: Any) -> None:
    httpx.post(f"{stack.emulator_url}/_emulator/faults", json=changes).raise_for_status()


def _accepted(response: httpx.Response) -> str:
    assert response.status_code in (200, 202), response.text
    job_id: str = response.json()["id"]
    return job_id


TASKS: list[tuple[str, dict[str, str]]] = [
    ("caption", {}), ("classify", {"labels": "circle,square,triangle"}), ("detect", {}),
]  # fmt: skip


def _sync(client: httpx.Client, seeds: range) -> list[str]:
    ids = []
    for seed in seeds:
        task, fields = TASKS[seed % 3]
        image, _ = scene_png(seed, width=160, height=120, count=1)
        ids.append(_accepted(submit(client, image, task=task, model=SYNC_MODEL, **fields)))
    return ids


def _round(stack: Monitored, client: httpx.Client, n: int) -> list[str]:
    """One round of 24 jobs through every path the dashboard shows; their ids.

    Two rounds, scraped in between: Prometheus' rate() sees a counter's increases from its
    first sample on, and a series appears with its first increment, so each path runs twice.
    """
    base = 102 * n  # a multiple of 3: each round's repeat is the same task (one series)
    # Per-minute 429s (30 % of calls), retried after their RetryInfo; then spend-limit ones.
    _faults(stack, quota_shape="standard", fail_429_rate=0.3)
    ids = _sync(client, range(base, base + 7))
    wait_all(client, ids, timeout=60)
    _faults(stack, quota_shape="spend_limit")
    ids += _sync(client, range(base + 7, base + 14))
    # An image over the inline limit (File API) for two jobs: one upload, one reuse.
    large = noise_png(2112 + n, 200)
    ids.append(_accepted(submit(client, large, task="caption", model=SYNC_MODEL)))
    ids.append(_accepted(submit(client, large, task="classify", model=SYNC_MODEL,
                                labels="circle,square")))  # fmt: skip
    # Four tier=batch jobs: one Gemini batch. One more of another model waits: cancelled.
    batch = {"tier": "batch", "deadline_s": 3600}
    for seed in range(base + 40, base + 44):
        image, _ = scene_png(seed, width=96, height=96, count=1)
        ids.append(_accepted(submit(client, image, task="caption", model=BATCH_MODEL,
                                    options=batch)))  # fmt: skip
    image, _ = scene_png(base + 50, width=96, height=96, count=1)
    waiting = _accepted(submit(client, image, task="caption", model=OTHER_BATCH_MODEL,
                               options=batch))  # fmt: skip
    cancelled = client.post(f"/v1/jobs/{waiting}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    ids.append(waiting)
    # A user batch of two items, closed: batch.completed once they end.
    created = client.post("/v1/batches", json={"name": f"monitoring-{n}", "task": "caption",
                                               "model": SYNC_MODEL})  # fmt: skip
    assert created.status_code == 201, created.text
    batch_id = created.json()["id"]
    items = []
    for seed in (base + 60, base + 61):
        data, _ = scene_png(seed, width=96, height=96, count=1)
        items.append({"key": f"{seed}.png", "images": [{"data": _b64(data)}]})
    added = client.post(f"/v1/batches/{batch_id}/items", json={"items": items})
    assert added.status_code == 200, added.text
    ids.extend(item["job_id"] for item in added.json()["items"])
    assert client.post(f"/v1/batches/{batch_id}/close").status_code == 200
    wait_all(client, ids, timeout=120)
    _faults(stack, fail_429_rate=0.0)
    # A repeat of a finished job: answered from the result cache at submit.
    task, fields = TASKS[base % 3]
    image, _ = scene_png(base, width=160, height=120, count=1)
    response = submit(client, image, task=task, model=SYNC_MODEL, **fields)
    ids.append(_accepted(response))
    assert response.json()["status"] in TERMINAL, "a repeat is a result-cache hit"
    return ids


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _number(sample: list[Any]) -> float:
    return float(sample[1])


def _report(result: dict[str, Any]) -> list[dict[str, Any]] | str:
    """A query's answer for the report: each series' labels and value, or the error."""
    if result.get("status") != "success":
        return f"error: {result.get('error')}"
    data = result["data"]
    if data["resultType"] == "scalar":
        return [{"labels": {}, "value": data["result"][1]}]
    return [{"labels": item["metric"], "value": item["value"][1]} for item in data["result"]]


def test_prometheus_scrapes_the_stack_and_every_dashboard_query_returns_data(
    monitored: Monitored, tmp_path: Path
) -> None:
    stack = monitored
    # Both targets up before the run, so every counter's first increase is seen.
    _wait(lambda: _up(stack) == {"visionq-api": 1.0, "visionq-worker": 1.0}, 60, "targets up")
    with stack.client() as client:
        created = client.post("/v1/webhooks", json={
            "url": stack.receiver.url,
            "events": ["job.succeeded", "job.failed", "job.cancelled", "batch.completed"],
        })  # fmt: skip
        assert created.status_code == 201, created.text
        stack.receiver.secrets.append(created.json()["secret"])
        ids = _round(stack, client, 0)
        time.sleep(2 * SCRAPE_S + 0.5)  # scraped between the rounds
        ids += _round(stack, client, 1)
        jobs = wait_all(client, ids, timeout=120)
    assert len(jobs) == 48
    assert {job["status"] for job in jobs} <= TERMINAL
    # Every job's event delivered (retried after the 500s), and the batches'.
    ended = {job["id"] for job in jobs}
    stack.receiver.wait_for(
        lambda got: (
            ended <= {r.subject_id for r in got if r.ok}
            and any(r.type == "batch.completed" and r.ok for r in got)
        ),
        timeout=60,
    )
    assert all(r.verified for r in stack.receiver.snapshot())
    time.sleep(3 * SCRAPE_S + 1)  # the last increases scraped

    report: dict[str, dict[str, Any]] = {}
    empty: list[str] = []
    for title, expr in dashboard_exprs(tenant=".*"):
        result = stack.query(expr)
        report.setdefault(title, {})[expr] = _report(result)
        values = (
            [result["data"]["result"]]
            if result.get("status") == "success" and result["data"]["resultType"] == "scalar"
            else result.get("data", {}).get("result", [])
        )
        numbers = [
            _number(item) if isinstance(item, list) else _number(item["value"]) for item in values
        ]
        if not any(not math.isnan(n) for n in numbers):
            empty.append(f"{title}: {expr} -> {_report(result)}")
    alerts: dict[str, Any] = {}
    for name, expr in alert_exprs():
        result = stack.query(expr)
        assert result.get("status") == "success", f"{name}: {result}"
        alerts[name] = _report(result)
    path = Path(os.environ.get(REPORT_VARIABLE) or tmp_path / "monitor_report.json")
    path.write_text(json.dumps({"panels": report, "alerts": alerts}, indent=2), encoding="utf-8")
    print(f"dashboard report: {path}")
    assert not empty, "dashboard queries without data after the run:\n" + "\n".join(empty)


def test_both_endpoints_pass_promtool_check_metrics(monitored: Monitored) -> None:
    promtool = binary("promtool")
    api = httpx.get(f"{monitored.api_url}/metrics", timeout=10)
    worker = httpx.get(monitored.worker_metrics_url, timeout=10)
    for name, response in (("api", api), ("worker", worker)):
        assert response.status_code == 200, f"{name}: {response.status_code}"
        assert "visionq_" in response.text
        done = subprocess.run(
            [promtool, "check", "metrics"], input=response.text, capture_output=True,
            text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{name} /metrics: {done.stdout}{done.stderr}"


def _up(stack: Monitored) -> dict[str, float]:
    result = stack.query("up")
    if result.get("status") != "success":
        return {}
    return {item["metric"]["job"]: float(item["value"][1]) for item in result["data"]["result"]}
