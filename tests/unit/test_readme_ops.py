"""README's Monitoring and Webhooks sections stay true: every metric visionq exports, every
alert rule and every webhook event type is named there, and the five lines that verify a
webhook run as written against a delivery signed the way a worker signs one."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from standardwebhooks import WebhookVerificationError

from visionq.models import metrics
from visionq.models.webhook_endpoints import new_secret
from visionq.models.webhook_outbox import EventType
from visionq.worker.webhook_sign import webhook_headers

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _exported() -> set[str]:
    """The metric names as Prometheus shows them (counters end _total)."""
    names = set(metrics.CLUSTER_GAUGES)
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            suffix = "_total" if value._type == "counter" else ""
            names.add(value._name + suffix)
    return names


def test_readme_lists_every_metric() -> None:
    exported = _exported()
    assert len(exported) > 25
    assert sorted(name for name in exported if f"`{name}`" not in README) == []
    listed = set(re.findall(r"`(visionq_[a-z_]+)`", README))
    assert sorted(listed - exported) == [], "README names metrics that do not exist"


def test_readme_lists_every_alert() -> None:
    rules = yaml.safe_load((ROOT / "monitoring/prometheus/alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert alerts and sorted(name for name in alerts if f"`{name}`" not in README) == []


def test_readme_lists_every_event_type() -> None:
    assert [kind.value for kind in EventType if f"`{kind.value}`" not in README] == []


class _Request:
    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        self.body = body
        self.headers = headers


def test_the_five_lines_verify_a_delivery() -> None:
    (snippet,) = re.findall(r"```py\n(.*?)```", README, flags=re.DOTALL)
    assert len([line for line in snippet.splitlines() if line.strip()]) == 5
    secret = new_secret()
    body = json.dumps({"type": "job.succeeded", "timestamp": "x", "data": {"id": "j"}}).encode()
    headers = webhook_headers("msg_readme", datetime.now(UTC), body, [secret])
    handled: list[tuple[str, Any]] = []
    scope: dict[str, Any] = {
        "request": _Request(body, headers),
        "seen_before": lambda msg_id: msg_id != "msg_readme",
        "handle": lambda kind, data: handled.append((kind, data)),
    }
    exec(snippet.replace('"whsec_..."', repr(secret)), scope)  # our README's own lines
    assert handled == [("job.succeeded", {"id": "j"})]
    # A body changed on the way is refused.
    scope["request"] = _Request(body.replace(b'"j"', b'"k"'), headers)
    with pytest.raises(WebhookVerificationError):
        exec(snippet.replace('"whsec_..."', repr(secret)), scope)
