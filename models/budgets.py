"""Per-tenant USD budgets: atomic reservation at admission, settlement when a job ends.

Amounts are integer nano-USD. Every change is a single conditional UPDATE, so concurrent
API processes (and workers settling) never lose an update or overshoot a cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.tables import Budget, utcnow

NANO = 1_000_000_000


def _periods(now: datetime) -> tuple[str, str]:
    return now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")


def _ensure_row(session: Session, tenant: str) -> None:
    if session.get(Budget, tenant) is not None:
        return
    try:
        with session.begin_nested():
            session.add(Budget(tenant=tenant))
    except IntegrityError:
        pass  # created meanwhile by another request


def _roll_periods(session: Session, tenant: str, now: datetime) -> None:
    """Start today's and this month's spending at zero when the period changed."""
    day, month = _periods(now)
    session.execute(
        update(Budget)
        .where(Budget.tenant == tenant, Budget.day != day)
        .values(day=day, spent_day_nusd=0)
    )
    session.execute(
        update(Budget)
        .where(Budget.tenant == tenant, Budget.month != month)
        .values(month=month, spent_month_nusd=0)
    )


def set_budget(
    session: Session, *, tenant: str, daily_nusd: int | None, monthly_nusd: int | None
) -> None:
    """Set (or clear, with None) a tenant's daily and monthly caps."""
    _ensure_row(session, tenant)
    session.execute(
        update(Budget)
        .where(Budget.tenant == tenant)
        .values(daily_nusd=daily_nusd, monthly_nusd=monthly_nusd, updated_at=utcnow())
    )


@dataclass(frozen=True)
class BudgetState:
    tenant: str
    daily_nusd: int | None
    monthly_nusd: int | None
    spent_day_nusd: int
    spent_month_nusd: int
    reserved_nusd: int


def budget_state(session: Session, tenant: str, now: datetime | None = None) -> BudgetState:
    """The tenant's caps and counters for the current day and month."""
    now = now or utcnow()
    day, month = _periods(now)
    row = session.get(Budget, tenant, populate_existing=True)
    if row is None:
        return BudgetState(tenant, None, None, 0, 0, 0)
    return BudgetState(
        tenant=tenant,
        daily_nusd=row.daily_nusd,
        monthly_nusd=row.monthly_nusd,
        spent_day_nusd=row.spent_day_nusd if row.day == day else 0,
        spent_month_nusd=row.spent_month_nusd if row.month == month else 0,
        reserved_nusd=row.reserved_nusd,
    )


def reserve(session: Session, *, tenant: str, amount_nusd: int) -> bool:
    """Hold ``amount_nusd`` against the caps; False (nothing held) if it does not fit.

    Must run in the same transaction that creates the job, as its first write.
    """
    now = utcnow()
    _ensure_row(session, tenant)
    _roll_periods(session, tenant, now)
    fits = and_(
        or_(
            Budget.daily_nusd.is_(None),
            Budget.spent_day_nusd + Budget.reserved_nusd + amount_nusd <= Budget.daily_nusd,
        ),
        or_(
            Budget.monthly_nusd.is_(None),
            Budget.spent_month_nusd + Budget.reserved_nusd + amount_nusd <= Budget.monthly_nusd,
        ),
    )
    held = session.execute(
        update(Budget)
        .where(Budget.tenant == tenant, fits)
        .values(reserved_nusd=Budget.reserved_nusd + amount_nusd, updated_at=now)
    )
    return bool(held.rowcount)  # type: ignore[attr-defined]


def settle(session: Session, *, tenant: str, reserved_nusd: int, cost_nusd: int) -> None:
    """Release a job's reservation and count what it actually cost (0 if it never ran)."""
    now = utcnow()
    _ensure_row(session, tenant)
    _roll_periods(session, tenant, now)
    session.execute(
        update(Budget)
        .where(Budget.tenant == tenant)
        .values(
            reserved_nusd=Budget.reserved_nusd - reserved_nusd,
            spent_day_nusd=Budget.spent_day_nusd + cost_nusd,
            spent_month_nusd=Budget.spent_month_nusd + cost_nusd,
            updated_at=now,
        )
    )


def tenants(session: Session) -> list[str]:
    return list(session.scalars(select(Budget.tenant).order_by(Budget.tenant)))
