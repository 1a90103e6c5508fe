"""promtool (Debian's prometheus package) on the checked-in Prometheus files: the config
and the rules are valid, the rules' unit tests (alerts_test.yml) pass, and every query of
the Grafana dashboard is valid PromQL. About a second; skipped without promtool unless
VISIONQ_REQUIRE_PROMETHEUS=1 (CI)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.monitoring.promconfig import (
    ALERTS,
    ALERTS_TEST,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    binary,
    dashboard_exprs,
    render,
)


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    done = subprocess.run(
        [binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_the_checked_in_config_is_valid() -> None:
    # Syntax only: its credentials_file exists only inside compose's prometheus container
    # (a tmpfs); the rendered config below is checked in full, rule files included.
    assert "SUCCESS" in promtool("check", "config", "--syntax-only", str(PROMETHEUS_CONFIG))


def test_the_config_a_test_renders_is_valid(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret\n", encoding="utf-8")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        render("127.0.0.1:8000", ["127.0.0.1:9101"], interval_s=1, token_file=token),
        encoding="utf-8",
    )
    promtool("check", "config", str(config), cwd=tmp_path)


def test_the_alert_rules_are_valid() -> None:
    output = promtool("check", "rules", str(ALERTS))
    assert "SUCCESS: 12 rules found" in output


def test_the_alert_rules_unit_tests_pass() -> None:
    # One case that fires (labels and rendered annotations) and one that must not, per alert.
    assert "SUCCESS" in promtool("test", "rules", str(ALERTS_TEST))


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool 2.42 has no "check expr": each query becomes a recording rule, which
    # `check rules` parses (a bad query names its rule, i.e. its panel).
    exprs = dashboard_exprs()
    rules = [
        {"record": f"visionq_dashboard:query_{index}", "expr": expr}
        for index, (_, expr) in enumerate(exprs)
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = promtool("check", "rules", str(path), cwd=tmp_path)
    assert f"SUCCESS: {len(rules)} rules found" in output
