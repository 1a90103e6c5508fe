"""`visionq cost report` and `visionq budgets`: spending, estimation accuracy, caps."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from visionq.models.settings import get_settings

if TYPE_CHECKING:
    from visionq.models.reports import SpendRow

cost_app = typer.Typer(
    help="What jobs cost, and how good the estimates were.", no_args_is_help=True
)
budgets_app = typer.Typer(help="Per-tenant daily and monthly USD caps.", no_args_is_help=True)


_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _since(value: str | None) -> datetime | None:
    """A duration back from now ('90s', '30m', '12h', '7d', '2w') or an ISO date/time (UTC)."""
    if value is None:
        return None
    relative = re.fullmatch(r"(\d+)\s*([smhdw])", value.strip().lower())
    if relative:
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: amount})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(
            "use a duration (30m, 12h, 7d, 2w) or a date like 2026-11-01"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@cost_app.command("report")
def report(
    since: Annotated[
        str | None, typer.Option(help="Only jobs finished since: 30m, 12h, 7d, 2w or a date.")
    ] = None,
    by: Annotated[
        str, typer.Option(help="Group by model, tenant, task, day or tier (the tier served).")
    ] = "model",
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Spending and savings per group, and how good estimates were.

    Each group's cost beside the same usage at standard prices (saved USD
    and %: flex and batch bill half). A cached job was answered for free; at
    standard it counts what its source job's answer cost there (the call the
    cache saved; nothing when retention deleted the source).
    The estimation error per model, with proposed corrections.
    """
    from visionq.models.db import make_engine, make_session_factory
    from visionq.models.reports import (
        GROUPINGS,
        SpendRow,
        cache_sources,
        finished_jobs,
        spend_by,
    )
    from visionq.vision.calibration import accuracy, observation_of
    from visionq.vision.costing import usd_text

    if by not in GROUPINGS:
        raise typer.BadParameter(f"--by must be one of {', '.join(GROUPINGS)}")
    engine = make_engine(get_settings().database_url, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            jobs = finished_jobs(session, since=_since(since))
            sources = cache_sources(session, jobs)
    finally:
        engine.dispose()
    rows = spend_by(jobs, by, sources)
    checks = accuracy(
        observation_of(job.model, job.estimate, job.usage) for job in jobs if not job.cached_from
    )
    if as_json:
        typer.echo(json.dumps({
            "by": by,
            "rows": [_json_row(row) for row in rows],
            "estimation": [check.__dict__ for check in checks],
        }, indent=2))  # fmt: skip
        return
    console = Console()
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", title=f"spending by {by}")
    columns = (by, "jobs", "cached", "prompt tokens", "output tokens", "cost USD",
               "at standard USD", "saved USD", "saved %")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == by else "right", no_wrap=column == by)
    for row in rows:
        table.add_row(row.key, str(row.jobs), str(row.cached), f"{row.prompt_tokens:,}",
                      f"{row.output_tokens:,}", usd_text(row.cost_nusd),
                      usd_text(row.standard_nusd), usd_text(row.saved_nusd),
                      _pct(row.saved_pct))  # fmt: skip
    total = SpendRow(key="total", cost_nusd=sum(r.cost_nusd for r in rows),
                     standard_nusd=sum(r.standard_nusd for r in rows))  # fmt: skip
    table.add_row("total", str(sum(r.jobs for r in rows)), "", "", "", usd_text(total.cost_nusd),
                  usd_text(total.standard_nusd), usd_text(total.saved_nusd),
                  _pct(total.saved_pct), style="bold")  # fmt: skip
    console.print(table)
    accuracy_table = Table(box=box.SIMPLE_HEAD, header_style="bold", title="input-token estimates")
    for column in ("model", "jobs", "mean abs error %", "worst abs error %"):
        accuracy_table.add_column(column, justify="left" if column == "model" else "right")
    for check in checks:
        accuracy_table.add_row(check.model, str(check.jobs), f"{check.mean_abs_pct:.1f}",
                               f"{check.worst_abs_pct:.1f}")  # fmt: skip
    console.print(accuracy_table)
    for check in checks:
        if check.finding:
            console.print(check.finding, markup=False, highlight=False)
        if check.proposal:
            console.print("proposed catalogue entry (VISIONQ_MODELS_FILE):", highlight=False)
            console.print(
                json.dumps({"models": check.proposal}, indent=2), markup=False, highlight=False
            )


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _json_row(row: SpendRow) -> dict[str, object]:
    """A report row for --json: money as USD strings beside the nano-USD integers."""
    from visionq.vision.costing import usd_text

    return {
        **row.__dict__,
        "cost_usd": usd_text(row.cost_nusd),
        "standard_usd": usd_text(row.standard_nusd),
        "saved_usd": usd_text(row.saved_nusd),
        "saved_pct": None if row.saved_pct is None else round(row.saved_pct, 2),
    }


def _cap(nusd: int | None) -> str:
    from visionq.vision.costing import usd_text

    return "none" if nusd is None else usd_text(nusd)


def _nano(usd: str | None) -> int | None:
    if usd is None or usd.lower() in ("", "none", "unlimited"):
        return None
    try:
        amount = Decimal(usd)
    except InvalidOperation as exc:
        raise typer.BadParameter(f"{usd!r} is not an amount in USD") from exc
    if amount < 0:
        raise typer.BadParameter("budgets cannot be negative")
    return int(amount * 1_000_000_000)


@budgets_app.command("set")
def set_(
    tenant: Annotated[str, typer.Argument(help="Tenant (see visionq keys list).")],
    daily: Annotated[
        str | None,
        typer.Option(
            help="USD per day (UTC); 'none' = no cap; kept if omitted.", show_default=False
        ),
    ] = None,
    monthly: Annotated[
        str | None,
        typer.Option(help="USD per month; 'none' = no cap; kept if omitted.", show_default=False),
    ] = None,
    alert_at: Annotated[
        list[float] | None,
        typer.Option(
            "--alert-at",
            metavar="RATIO",
            help="Send a budget.threshold webhook when spending reaches this ratio of a cap "
            "(repeat: --alert-at 0.5 --alert-at 0.9; default 0.8 and 1.0; kept if omitted).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Set a tenant's daily and monthly USD caps, and alert ratios.

    Only the options given change: `--alert-at 0.9` alone keeps the caps,
    `--daily none` removes the daily cap. Submissions that could exceed a
    cap are refused with 402. Crossing an alert ratio of a cap sends one
    budget.threshold webhook event per ratio, day and month.
    """
    from visionq.models.budgets import budget_state, set_budget
    from visionq.models.db import make_engine, make_session_factory

    if daily is None and monthly is None and not alert_at:
        raise typer.BadParameter(
            "nothing to change: give --daily USD, --monthly USD or --alert-at RATIO",
            param_hint="--daily/--monthly/--alert-at",
        )
    daily_nusd, monthly_nusd = _nano(daily), _nano(monthly)
    engine = make_engine(get_settings().database_url, pool_size=1)
    try:
        with make_session_factory(engine).begin() as session:
            # An option not given keeps its value (read in the same transaction).
            current = budget_state(session, tenant)
            if daily is None:
                daily_nusd = current.daily_nusd
            if monthly is None:
                monthly_nusd = current.monthly_nusd
            set_budget(
                session, tenant=tenant, daily_nusd=daily_nusd, monthly_nusd=monthly_nusd,
                alert_ratios=alert_at or None,
            )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--alert-at") from exc
    finally:
        engine.dispose()
    alerts = f", alerts at {', '.join(f'{r:g}' for r in sorted(alert_at))}" if alert_at else ""
    typer.echo(
        f"budget of {tenant}: daily {_cap(daily_nusd)}, monthly {_cap(monthly_nusd)} USD{alerts}"
    )


@budgets_app.command("show")
def show(
    tenant: Annotated[str | None, typer.Argument(help="One tenant; all if omitted.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output (USD as strings).")] = False,
) -> None:
    """Caps, spending, and what unfinished jobs hold.

    Spending today and this month, per tenant.
    """
    from visionq.models.budgets import budget_state, tenants
    from visionq.models.db import make_engine, make_session_factory
    from visionq.vision.costing import usd_text

    engine = make_engine(get_settings().database_url, pool_size=1)
    table = Table(box=box.SIMPLE_HEAD, header_style="bold")
    for column in ("tenant", "daily cap", "spent today", "monthly cap", "spent month", "reserved"):
        table.add_column(column, justify="left" if column == "tenant" else "right")
    try:
        with make_session_factory(engine)() as session:
            states = [
                budget_state(session, name) for name in ([tenant] if tenant else tenants(session))
            ]
    finally:
        engine.dispose()
    if as_json:
        rows = [
            {
                "tenant": s.tenant,
                "daily_usd": _cap(s.daily_nusd),
                "spent_today_usd": usd_text(s.spent_day_nusd),
                "monthly_usd": _cap(s.monthly_nusd),
                "spent_month_usd": usd_text(s.spent_month_nusd),
                "reserved_usd": usd_text(s.reserved_nusd),
            }
            for s in states
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    for s in states:
        table.add_row(
            s.tenant, _cap(s.daily_nusd), usd_text(s.spent_day_nusd), _cap(s.monthly_nusd),
            usd_text(s.spent_month_nusd), usd_text(s.reserved_nusd),
        )  # fmt: skip
    Console().print(table)
