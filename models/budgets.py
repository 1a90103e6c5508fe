"""Per-tenant USD budgets: atomic reservation at admission, settlement when a job ends.

Amounts are integer nano-USD. Every change is a single conditional UPDATE, so concurrent
API processes (and workers settling) never lose an update or overshoot a cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, and_, bindparam, case, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionq.models.tables import BUDGETS, Budget, utcnow


def _periods(now: datetime) -> tuple[str, str]:
    return now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")


def _ensure_row(session: Session, tenant: str) -> bool:
    """Create the tenant's row if missing; True when it was missing (created here or by a
    concurrent request meanwhile)."""
    if session.get(Budget, tenant) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(Budget(tenant=tenant))
    except IntegrityError:
        pass  # created meanwhile by another request
    return True


def _current(now: datetime) -> dict[str, Any]:
    """Column values that move a row to the current day and month in the same UPDATE:
    spending of a period that ended counts as zero (no separate roll-over statement)."""
    day, month = _periods(now)
    return {
        "day": day,
        "month": month,
        "spent_day_nusd": case((Budget.day == day, Budget.spent_day_nusd), else_=0),
        "spent_month_nusd": case((Budget.month == month, Budget.spent_month_nusd), else_=0),
    }


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


_CAPS = select(BUDGETS.c.daily_nusd, BUDGETS.c.monthly_nusd).where(
    BUDGETS.c.tenant == bindparam("tenant")
)


def has_caps(session: Session, tenant: str) -> bool:
    """True when the tenant has a daily or monthly cap (only then are jobs reserved for)."""
    row = session.connection().execute(_CAPS, {"tenant": tenant}).first()
    return row is not None and (row.daily_nusd is not None or row.monthly_nusd is not None)


def reserve(session: Session, *, tenant: str, amount_nusd: int) -> bool:
    """Hold ``amount_nusd`` against the caps; False (nothing held) if it does not fit.

    Must run in the same transaction that creates the job, as its first write.
    """
    now = utcnow()
    current = _current(now)
    spent_day, spent_month = current["spent_day_nusd"], current["spent_month_nusd"]
    fits = and_(
        or_(
            Budget.daily_nusd.is_(None),
            spent_day + Budget.reserved_nusd + amount_nusd <= Budget.daily_nusd,
        ),
        or_(
            Budget.monthly_nusd.is_(None),
            spent_month + Budget.reserved_nusd + amount_nusd <= Budget.monthly_nusd,
        ),
    )

    def hold() -> int:
        held = session.execute(
            update(Budget)
            .where(Budget.tenant == tenant, fits)
            .values(**current, reserved_nusd=Budget.reserved_nusd + amount_nusd, updated_at=now)
        )
        return int(held.rowcount)  # type: ignore[attr-defined]

    if hold():
        return True
    # No row (a tenant's first job) or over the cap: only the first is worth a retry.
    return _ensure_row(session, tenant) and bool(hold())


# The settling UPDATE runs once per job in the worker: built once, parameters at execution.
_SETTLE = (
    update(BUDGETS)
    .where(BUDGETS.c.tenant == bindparam("settle_tenant"))
    .values(
        day=bindparam("settle_day"),
        month=bindparam("settle_month"),
        reserved_nusd=BUDGETS.c.reserved_nusd - bindparam("settle_reserved", type_=BigInteger),
        spent_day_nusd=case(
            (BUDGETS.c.day == bindparam("settle_day"), BUDGETS.c.spent_day_nusd), else_=0
        )
        + bindparam("settle_cost", type_=BigInteger),
        spent_month_nusd=case(
            (BUDGETS.c.month == bindparam("settle_month"), BUDGETS.c.spent_month_nusd), else_=0
        )
        + bindparam("settle_cost", type_=BigInteger),
        updated_at=bindparam("settle_now", type_=BUDGETS.c.updated_at.type),
    )
)


def settle(session: Session, *, tenant: str, reserved_nusd: int, cost_nusd: int) -> None:
    """Release a job's reservation and count what it actually cost (0 if it never ran).

    One UPDATE in the common case (the worker's hot path), moving the row to the current
    day and month as it goes; the row is created only for a tenant that has none yet.
    """
    now = utcnow()
    day, month = _periods(now)
    params = {
        "settle_tenant": tenant,
        "settle_day": day,
        "settle_month": month,
        "settle_reserved": reserved_nusd,
        "settle_cost": cost_nusd,
        "settle_now": now,
    }

    def apply() -> int:
        return int(session.connection().execute(_SETTLE, params).rowcount)

    if not apply() and _ensure_row(session, tenant):
        apply()


def tenants(session: Session) -> list[str]:
    return list(session.scalars(select(Budget.tenant).order_by(Budget.tenant)))
