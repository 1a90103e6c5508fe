"""Operator commands: --version, keys list (--json, header), cost report --since durations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from visionq.cli.cost import _since
from visionq.cli.main import app

runner = CliRunner()


def test_version_comes_from_the_package_metadata() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"visionq {version('visionq')}"


def test_keys_list_has_a_header_and_json(migrated: str) -> None:
    created = runner.invoke(app, ["keys", "create", "laptop", "--tenant", "acme"])
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    table = runner.invoke(app, ["keys", "list"])
    assert table.exit_code == 0, table.output
    header, row = table.output.strip().splitlines()
    assert header.split("\t")[:4] == ["id", "tenant", "name", "prefix"]
    assert row.split("\t")[1:3] == ["acme", "laptop"]
    listed = runner.invoke(app, ["keys", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (key,) = json.loads(listed.output)
    assert {k: key[k] for k in ("tenant", "name", "revoked_at")} == {
        "tenant": "acme", "name": "laptop", "revoked_at": None
    }  # fmt: skip
    assert secret.startswith(key["prefix"]) and secret not in listed.output
    assert "hash" not in listed.output


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_since_takes_durations(text: str, ago: timedelta) -> None:
    moment = _since(text)
    assert moment is not None
    assert abs((datetime.now(UTC) - ago) - moment) < timedelta(seconds=5)


def test_cost_report_since_thirty_minutes(migrated: str) -> None:
    result = runner.invoke(app, ["cost", "report", "--since", "30m", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"] == []
