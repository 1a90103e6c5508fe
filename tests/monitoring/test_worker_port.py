"""The worker metrics port in compose: it listens on every interface of the worker
container (the default is loopback only, review R12), so the prometheus container reaches
it, and it is not published to the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_workers_serve_metrics_to_the_prometheus_container() -> None:
    worker = _compose()["services"]["worker"]
    env = worker["environment"]
    assert env["VISIONQ_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert str(env["VISIONQ_WORKER_METRICS_PORT"]) == "9101"
    assert "9101" in [str(port) for port in worker.get("expose", [])]
    assert not worker.get("ports"), "the metrics port stays inside the compose network"
