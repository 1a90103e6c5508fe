"""`visionq budgets set` changes only the options given (review of issue 21, bug 1): README's
`--alert-at` example alone used to clear the tenant's caps, switching enforcement off."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from visionq.cli.cost import budgets_app
from visionq.models.budgets import DEFAULT_ALERT_RATIOS
from visionq.models.tables import BUDGETS

pytestmark = pytest.mark.integration


def _row(sessions: sessionmaker[Session], tenant: str) -> tuple[object, ...]:
    with sessions() as session:
        row = session.execute(
            select(BUDGETS.c.daily_nusd, BUDGETS.c.monthly_nusd, BUDGETS.c.alert_ratios).where(
                BUDGETS.c.tenant == tenant
            )
        ).one()
    return tuple(row)


def test_budgets_set_cost_caps_kept_unless_given(
    sessions: sessionmaker[Session], database_url: str
) -> None:
    tenant = f"budget-cli-{uuid.uuid4().hex[:8]}"
    env = {"VISIONQ_DATABASE_URL": database_url, "COLUMNS": "100"}

    def budgets(*args: str) -> str:
        result = CliRunner().invoke(budgets_app, ["set", tenant, *args], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    budgets("--daily", "10", "--monthly", "100")
    # README's example: alert ratios alone keep both caps.
    shown = budgets("--alert-at", "0.5", "--alert-at", "0.9")
    assert "daily 10, monthly 100 USD, alerts at 0.5, 0.9" in shown
    assert _row(sessions, tenant) == (10_000_000_000, 100_000_000_000, [0.5, 0.9])
    # One cap given: the other cap and the ratios are kept; 'none' clears only that one.
    budgets("--monthly", "50")
    assert _row(sessions, tenant) == (10_000_000_000, 50_000_000_000, [0.5, 0.9])
    assert "daily none, monthly 50 USD" in budgets("--daily", "none")
    assert _row(sessions, tenant) == (None, 50_000_000_000, [0.5, 0.9])
    # Nothing to change is a usage error, not a silent reset.
    nothing = CliRunner().invoke(budgets_app, ["set", tenant], env=env)
    assert nothing.exit_code == 2 and "nothing to change" in nothing.output
    assert _row(sessions, tenant) == (None, 50_000_000_000, [0.5, 0.9])


def test_budgets_set_alert_at(sessions: sessionmaker[Session], database_url: str) -> None:
    tenant = f"budget-cli-{uuid.uuid4().hex[:8]}"
    runner = CliRunner()
    env = {"VISIONQ_DATABASE_URL": database_url, "COLUMNS": "100"}
    args = ["set", tenant, "--daily", "1", "--alert-at", "0.9", "--alert-at", "0.5"]
    result = runner.invoke(budgets_app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "alerts at 0.5, 0.9" in result.output
    bad = runner.invoke(budgets_app, ["set", tenant, "--alert-at", "0"], env=env)
    assert bad.exit_code != 0 and "between 0" in bad.output
    with sessions() as session:
        ratios = session.scalar(select(BUDGETS.c.alert_ratios).where(BUDGETS.c.tenant == tenant))
    assert ratios == [0.5, 0.9] and DEFAULT_ALERT_RATIOS == (0.8, 1.0)
