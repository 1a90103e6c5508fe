"""The Grafana dashboard and its provisioning, checked as data (no Grafana, no Prometheus):
structure Grafana needs, one datasource uid, and every metric the dashboard and the alert
rules query is one visionq declares (a renamed metric breaks this test at once). The
queries are evaluated against a real Prometheus in tests/integration/test_monitoring_live.py.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.metrics import MetricWrapperBase

from tests.deploy.deployfiles import container_ports, mounts, services
from tests.monitoring.promconfig import (
    DASHBOARD,
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    alert_exprs,
    dashboard,
    dashboard_exprs,
    load_yaml,
    panels,
)
from visionq.models import metrics

PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "row"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
# Metric names in PromQL: a name followed by a selector, a range or a closing parenthesis.
METRIC_NAME = re.compile(r"\b(visionq_[a-z0-9_]+|up)\b(?=\s*[{\[)])")
# "metric{...tenant=~" — the matchers of one selector.
SELECTOR = re.compile(r"\b(visionq_[a-z0-9_]+)\{([^}]*)\}")


def declared() -> dict[str, tuple[str, ...]]:
    """Exposed series names of visionq's metrics → their label names (cluster gauges: the
    labels are the collector's; not known here, so None-checked by name only)."""
    found: dict[str, tuple[str, ...]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            family = value.describe()[0]
            # _labelnames: prometheus-client keeps a metric's label names only there.
            labels = tuple(getattr(value, "_labelnames", ()))
            for suffix in SUFFIXES[family.type]:
                found[family.name + suffix] = labels
    return found


def datasource_uid() -> str:
    (source,) = load_yaml(DATASOURCES)["datasources"]
    assert source["type"] == "prometheus"
    uid = source["uid"]
    assert isinstance(uid, str)
    return uid


def test_dashboard_has_identity_and_schema() -> None:
    data = dashboard()
    assert data["uid"] == "visionq-overview"
    assert data["title"]
    assert data["schemaVersion"] >= 36
    assert "id" not in data or data["id"] is None, "a provisioned dashboard has no fixed id"


def test_panels_have_unique_ids_a_place_and_a_known_type() -> None:
    seen: set[int] = set()
    for panel in panels():
        assert panel["id"] not in seen, f"panel id {panel['id']} twice"
        seen.add(panel["id"])
        assert panel["type"] in PANEL_TYPES, f"{panel['title']}: type {panel['type']}"
        place = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(place), panel["title"]
        assert place["x"] + place["w"] <= 24, f"{panel['title']} is wider than the grid"


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in panels():
        place = panel["gridPos"]
        for x in range(place["x"], place["x"] + place["w"]):
            for y in range(place["y"], place["y"] + place["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_query_uses_the_provisioned_datasource() -> None:
    uid = datasource_uid()
    for panel in panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{panel['title']}: empty query"
            assert target["datasource"]["uid"] == uid, panel["title"]
    for variable in dashboard()["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid, variable["name"]


def test_the_tenant_variable_lists_tenants_and_all_means_every_tenant() -> None:
    (variable,) = dashboard()["templating"]["list"]
    assert variable["name"] == "tenant"
    assert "visionq_jobs_submitted_total" in variable["query"]["query"]
    assert variable["includeAll"] and variable["allValue"] == ".*" and variable["multi"]
    filtered = [expr for _, expr in dashboard_exprs(tenant="T") if 'tenant=~"T"' in expr]
    assert filtered, "no panel is filtered by the tenant variable"


@pytest.mark.parametrize(
    ("where", "expr"),
    [pytest.param(title, expr, id=title) for title, expr in dashboard_exprs()]
    + [pytest.param(name, expr, id=name) for name, expr in alert_exprs()],
)
def test_every_metric_queried_is_declared(where: str, expr: str) -> None:
    known = declared()
    names = METRIC_NAME.findall(expr)
    assert names, f"{where}: no metric found in {expr}"
    for name in names:
        assert name == "up" or name in known or name in metrics.CLUSTER_GAUGES, (
            f"{where}: {name} is neither a metric of models/metrics.py nor a cluster gauge"
        )
    for name, matchers in SELECTOR.findall(expr):
        if "tenant" in matchers and name in known:
            assert "tenant" in known[name], f"{where}: {name} has no tenant label"


def test_provisioning_loads_the_dashboard_compose_mounts() -> None:
    providers: list[dict[str, Any]] = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    (provider,) = providers
    assert provider["type"] == "file"
    folder = provider["options"]["path"]
    grafana = {target: source for source, target, _ in mounts("grafana")}
    assert grafana.get(folder) == "./monitoring/grafana/dashboards", grafana
    assert (DASHBOARD.parent / DASHBOARD.name).is_file()
    assert grafana.get("/etc/grafana/provisioning") == "./monitoring/grafana/provisioning"


def test_the_datasource_points_at_the_compose_prometheus() -> None:
    (source,) = load_yaml(DATASOURCES)["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname in services(), f"no compose service {url.hostname}"
    assert url.port in container_ports(url.hostname), "Grafana asks another port"


# What a query plots, from its metric's unit suffix and its function: two queries on one
# axis must agree (a bytes/s line flattens counts/s; an age in seconds dwarfs a count).
UNIT_SUFFIXES = (("_seconds", "time"), ("_bytes", "bytes"), ("_usd", "money"), ("_ratio", "ratio"))


def plotted(expr: str) -> tuple[str, str]:
    """(quantity, per) a query plots: per is 's' for rate(), 'window' for increase(),
    '' for a level or a quantile."""
    names = METRIC_NAME.findall(expr)
    quantity = next(
        (kind for suffix, kind in UNIT_SUFFIXES for name in names if suffix in name), "count"
    )
    if expr.startswith("histogram_quantile("):
        return quantity, ""
    per = "s" if "rate(" in expr else "window" if "increase(" in expr else ""
    return quantity, per


def _axis(panel: dict[str, Any], ref: str) -> tuple[str, str]:
    """(placement, unit) of a query's series: the defaults, then its refId's override."""
    config = panel.get("fieldConfig", {})
    defaults = config.get("defaults", {})
    placement = defaults.get("custom", {}).get("axisPlacement", "auto")
    unit = defaults.get("unit", "")
    for override in config.get("overrides", []):
        if override["matcher"] == {"id": "byFrameRefID", "options": ref}:
            for prop in override["properties"]:
                if prop["id"] == "custom.axisPlacement":
                    placement = prop["value"]
                elif prop["id"] == "unit":
                    unit = prop["value"]
    return placement, unit


@pytest.mark.parametrize(
    "panel", [p for p in panels() if p["type"] == "timeseries"], ids=lambda p: p["title"]
)
def test_one_unit_per_axis(panel: dict[str, Any]) -> None:
    axes: dict[str, set[tuple[str, str]]] = {}
    units: dict[tuple[str, str], set[str]] = {}
    for target in panel["targets"]:
        placement, unit = _axis(panel, target["refId"])
        what = plotted(target["expr"])
        axes.setdefault(placement, set()).add(what)
        units.setdefault(what, set()).add(unit)
    for placement, kinds in axes.items():
        assert len(kinds) == 1, f"{panel['title']}: {sorted(kinds)} share the {placement} axis"
    for (quantity, per), found in units.items():
        if quantity == "time" and not per:
            assert found == {"s"}, f"{panel['title']}: seconds shown as {found}"
        if quantity == "bytes" and per == "s":
            assert found == {"Bps"}, f"{panel['title']}: bytes/s shown as {found}"
