"""The checked-in monitoring files (monitoring/) as data for the tests, and the Debian
Prometheus binaries they run.

``render`` turns monitoring/prometheus/prometheus.yml into the config of a test's own
Prometheus (only the targets, intervals and the rule file's path change), so the scrape jobs
and rules checked in are the ones the live test runs. ``dashboard_exprs`` lists every query
of the Grafana dashboard with its template variable filled in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
PROMETHEUS_DIR = MONITORING / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
GRAFANA_DIR = MONITORING / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "visionq.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "visionq.yml"

# Where monitoring/prometheus/entrypoint.sh writes VISIONQ_METRICS_TOKEN in compose.
COMPOSE_TOKEN_FILE = "/run/visionq/metrics_token"
ENTRYPOINT = PROMETHEUS_DIR / "entrypoint.sh"
API_JOB = "visionq-api"
WORKER_JOB = "visionq-worker"
# Set by .ci/run: a missing Prometheus fails the monitoring tests instead of skipping them.
REQUIRE_VARIABLE = "VISIONQ_REQUIRE_PROMETHEUS"
# The dashboard's one template variable and what "All" stands for.
TENANT_VARIABLE = re.compile(r"\$\{tenant(?::\w+)?\}|\$tenant\b")


def binary(name: str) -> str:
    """Path of ``prometheus`` or ``promtool`` (Debian's package puts both in /usr/bin).
    Skips the test when missing, unless VISIONQ_REQUIRE_PROMETHEUS=1 (CI), then fails."""
    # /usr/bin too: PATH may lack it (a minimal environment), the package's path does not.
    for found in (shutil.which(name), f"/usr/bin/{name}"):
        if found and Path(found).is_file():
            return found
    reason = (
        f"{name} not found: install Debian's prometheus package "
        "(apt-get install --no-install-recommends prometheus; scripts/test does it as root)"
    )
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{reason}; {REQUIRE_VARIABLE}=1 forbids skipping")
    pytest.skip(reason)


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as file:
        return yaml.safe_load(file)


def _job(config: dict[str, Any], name: str) -> dict[str, Any]:
    for job in config["scrape_configs"]:
        if job["job_name"] == name:
            assert isinstance(job, dict)
            return job
    raise KeyError(f"no scrape job {name} in {PROMETHEUS_CONFIG}")


def render(
    api: str, workers: Sequence[str], *, interval_s: float, token_file: Path | None = None
) -> str:
    """prometheus.yml with the API at ``api`` and the workers at ``workers`` (host:port
    each) instead of the compose hostnames, every interval set to ``interval_s`` and the
    rule file named by its absolute path (the rendered file lives elsewhere)."""
    config = load_yaml(PROMETHEUS_CONFIG)
    interval = f"{interval_s:g}s"
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    api_job = _job(config, API_JOB)
    api_job["static_configs"] = [{"targets": [api]}]
    worker_job = _job(config, WORKER_JOB)
    for job in (api_job, worker_job):  # both want VISIONQ_METRICS_TOKEN when it is set
        # The checked-in path is compose's tmpfs file (entrypoint.sh writes it).
        assert job["authorization"] == {"credentials_file": COMPOSE_TOKEN_FILE}, job
        if token_file is None:
            job.pop("authorization")
        else:
            job["authorization"] = {"credentials_file": str(token_file)}
    worker_job.pop("dns_sd_configs")
    worker_job["static_configs"] = [{"targets": list(workers)}]
    return yaml.safe_dump(config, sort_keys=False)


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def panels(data: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every panel of the dashboard, rows' nested panels included."""
    for panel in (data or dashboard())["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(path: Path = DASHBOARD, tenant: str = ".*") -> list[tuple[str, str]]:
    """(panel title, expr) of every query target, ``$tenant`` replaced by ``tenant``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for panel in panels(data):
        for target in panel.get("targets", []):
            found.append((panel["title"], TENANT_VARIABLE.sub(tenant, target.get("expr", ""))))
    return found


def alert_exprs() -> list[tuple[str, str]]:
    """(alert name, expr) of every rule in alerts.yml."""
    return [
        (rule["alert"], rule["expr"])
        for group in load_yaml(ALERTS)["groups"]
        for rule in group["rules"]
    ]
