"""`visionq cost report --by tier`: spend per served tier beside the same usage at standard
prices (saved USD and %), in models/reports.spend_by and through the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from visionq.cli.main import app
from visionq.models.db import make_engine, make_session_factory
from visionq.models.reports import GROUPINGS, SpendRow, spend_by, spend_cells, tier_of
from visionq.models.tables import Job

runner = CliRunner()
FINISHED = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def _job(number: int, *, served: str | None, cost: int, standard: int | None,
         cached_from: str | None = None) -> Job:  # fmt: skip
    return Job(
        id=f"job-{number}", tenant="acme", task="caption", model="gemini-3.5-flash-lite",
        status="succeeded", finished_at=FINISHED, served_tier=served, cost_nusd=cost,
        standard_cost_nusd=standard, cached_from=cached_from, prompt_tokens=100,
        candidates_tokens=10,
    )  # fmt: skip


def _jobs() -> list[Job]:
    return [
        _job(1, served="standard", cost=1000, standard=1000),
        _job(2, served="flex", cost=500, standard=1000),
        _job(3, served="flex", cost=250, standard=500),
        _job(4, served="batch", cost=500, standard=1000),
        _job(5, served="priority", cost=1800, standard=1000),
        _job(6, served=None, cost=0, standard=None, cached_from="job-1"),
        # Finished before tiers were recorded: it ran at standard, its cost is the standard one.
        _job(7, served=None, cost=700, standard=None),
    ]


def test_tier_is_a_grouping() -> None:
    assert "tier" in GROUPINGS


def test_spend_by_tier_sets_each_cost_beside_its_standard_price() -> None:
    rows = {row.key: row for row in spend_by(_jobs(), "tier")}
    assert sorted(rows) == ["batch", "cached", "flex", "priority", "standard", "unknown"]
    flex = rows["flex"]
    assert (flex.jobs, flex.cost_nusd, flex.standard_nusd, flex.saved_nusd) == (2, 750, 1500, 750)
    assert flex.saved_pct == pytest.approx(50.0)
    assert rows["batch"].saved_pct == pytest.approx(50.0)
    assert rows["standard"].saved_nusd == 0 and rows["standard"].saved_pct == pytest.approx(0.0)
    # Priority costs more than standard: a negative saving, said as such.
    assert rows["priority"].saved_nusd == -800
    assert rows["priority"].saved_pct == pytest.approx(-80.0)
    cached = rows["cached"]
    assert (cached.jobs, cached.cached, cached.cost_nusd, cached.standard_nusd) == (1, 1, 0, 0)
    assert cached.saved_pct is None  # nothing billed: no percentage to show
    assert (rows["unknown"].cost_nusd, rows["unknown"].saved_nusd) == (700, 0)


def test_a_cache_hit_counts_its_sources_standard_cost_as_saved() -> None:
    jobs = [*_jobs(), _job(8, served=None, cost=0, standard=None, cached_from="job-gone")]
    rows = {row.key: row for row in spend_by(jobs, "tier", {"job-1": 1000})}
    cached = rows["cached"]
    # job-6 reused job-1's answer (1,000 at standard); job-8's source is gone: no saving.
    assert (cached.jobs, cached.cost_nusd, cached.standard_nusd, cached.saved_nusd) == (
        2, 0, 1000, 1000,
    )  # fmt: skip
    assert cached.saved_pct == pytest.approx(100.0)


def test_other_groupings_carry_the_savings_too() -> None:
    [row] = spend_by(_jobs(), "model")
    assert row.jobs == 7
    assert row.cost_nusd == 1000 + 750 + 500 + 1800 + 0 + 700
    assert row.standard_nusd == 1000 + 1500 + 1000 + 1000 + 0 + 700
    assert row.saved_nusd == row.standard_nusd - row.cost_nusd


def test_tier_of_names_cached_and_unknown_jobs() -> None:
    jobs = {job.id: job for job in _jobs()}
    assert tier_of(jobs["job-2"]) == "flex"
    assert tier_of(jobs["job-6"]) == "cached"
    assert tier_of(jobs["job-7"]) == "unknown"


def test_saved_percentage_is_none_when_nothing_was_billed() -> None:
    assert SpendRow(key="x").saved_pct is None


@pytest.fixture
def seeded(migrated: str) -> str:
    """The CLI's database (``migrated``) holding the jobs of ``_jobs()``."""
    engine = make_engine(migrated, pool_size=1)
    try:
        with make_session_factory(engine).begin() as session:
            session.add_all(_jobs())
    finally:
        engine.dispose()
    return migrated


def test_cli_reports_by_tier_in_json(seeded: str) -> None:
    result = runner.invoke(app, ["cost", "report", "--by", "tier", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["by"] == "tier"
    rows = {row["key"]: row for row in report["rows"]}
    flex = rows["flex"]
    assert flex["cost_usd"] == "0.00000075" and flex["standard_usd"] == "0.0000015"
    assert flex["saved_usd"] == "0.00000075" and flex["saved_pct"] == 50.0
    # The cache hit reused job-1's answer, which cost 1,000 nUSD at standard: that is saved.
    cached = rows["cached"]
    assert (cached["cost_usd"], cached["standard_usd"], cached["saved_usd"]) == (
        "0", "0.000001", "0.000001",
    )  # fmt: skip
    assert cached["saved_pct"] == 100.0
    assert rows["priority"]["saved_usd"] == "-0.0000008"


def test_cli_table_by_tier_has_the_savings_columns(seeded: str) -> None:
    result = runner.invoke(app, ["cost", "report", "--by", "tier"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "at standard USD" in result.output and "saved %" in result.output
    [total] = [line for line in result.output.splitlines() if line.strip().startswith("total")]
    # 4,750 nUSD billed against 6,200 at standard (the cache hit's source: 1,000): 1,450
    # saved, 23.4 %.
    assert total.split()[-4:] == ["0.00000475", "0.0000062", "0.00000145", "23.4"]


def test_cli_refuses_an_unknown_grouping(seeded: str) -> None:
    result = runner.invoke(app, ["cost", "report", "--by", "colour"])
    assert result.exit_code != 0
    assert "tier" in result.output


def test_spend_cells_group_by_day_model_and_served_tier() -> None:
    """The API's spending rows: one per (day, model, served tier), counted as spend_by
    counts (a cache hit's standard price from its source)."""
    other_day = _job(8, served="flex", cost=100, standard=200)
    other_day.finished_at = datetime(2026, 12, 4, 23, 59, tzinfo=UTC)
    other_model = _job(9, served="flex", cost=300, standard=600)
    other_model.model = "gemini-3.6-flash"
    jobs = [*_jobs(), other_day, other_model]
    cells = spend_cells(jobs, {"job-1": 1000})
    keys = [(cell.day, cell.model, cell.tier) for cell in cells]
    assert keys == sorted(keys) and len(keys) == len(set(keys))
    cell = {(c.day, c.model, c.tier): c for c in cells}
    flex = cell[("2026-12-05", "gemini-3.5-flash-lite", "flex")]
    assert (flex.jobs, flex.cost_nusd, flex.standard_nusd) == (2, 750, 1500)
    assert cell[("2026-12-04", "gemini-3.5-flash-lite", "flex")].jobs == 1
    assert cell[("2026-12-05", "gemini-3.6-flash", "flex")].cost_nusd == 300
    cached = cell[("2026-12-05", "gemini-3.5-flash-lite", "cached")]
    assert (cached.cached, cached.cost_nusd, cached.standard_nusd) == (1, 0, 1000)
    # Summed, the cells are the report's totals.
    [total] = spend_by(jobs, "tenant", {"job-1": 1000})
    assert sum(c.cost_nusd for c in cells) == total.cost_nusd
    assert sum(c.standard_nusd for c in cells) == total.standard_nusd
    assert sum(c.output_tokens for c in cells) == total.output_tokens
