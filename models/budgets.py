"""Per-tenant USD budgets: atomic reservation at admission, settlement when a job ends,
and a budget.threshold webhook event when spending crosses one of the tenant's alert
ratios of a cap (once per level per day or month).

Amounts are integer nano-USD. Every change is a single conditional UPDATE, so concurrent
API processes (and workers settling) never lose an update or overshoot a cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Row, and_, bindparam, case, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionq.models.tables import BUDGETS, Budget, utcnow
from visionq.models.webhook_outbox import EventType, NewEvent, record_event
from visionq.vision.costing import usd_text

# The ratios of a cap that send budget.threshold when budgets.alert_ratios is NULL.
DEFAULT_ALERT_RATIOS = (0.8, 1.0)


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
    session: Session,
    *,
    tenant: str,
    daily_nusd: int | None,
    monthly_nusd: int | None,
    alert_ratios: Sequence[float] | None = None,
) -> None:
    """Set (or clear, with None) a tenant's daily and monthly caps; ``alert_ratios`` (when
    given) the ratios of a cap whose crossing sends budget.threshold (each in (0, 10])."""
    values: dict[str, Any] = {
        "daily_nusd": daily_nusd, "monthly_nusd": monthly_nusd, "updated_at": utcnow()
    }  # fmt: skip
    if alert_ratios is not None:
        if not alert_ratios or any(not 0 < ratio <= 10 for ratio in alert_ratios):
            raise ValueError("alert ratios must be between 0 (excluded) and 10, e.g. 0.8")
        values["alert_ratios"] = sorted(set(alert_ratios))
    _ensure_row(session, tenant)
    session.execute(update(Budget).where(Budget.tenant == tenant).values(**values))


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
    # What the threshold check needs: no second read on the hot path.
    .returning(
        BUDGETS.c.spent_day_nusd,
        BUDGETS.c.spent_month_nusd,
        BUDGETS.c.daily_nusd,
        BUDGETS.c.monthly_nusd,
        BUDGETS.c.alert_ratios,
        BUDGETS.c.alert_day,
        BUDGETS.c.alert_day_level,
        BUDGETS.c.alert_month,
        BUDGETS.c.alert_month_level,
    )
)


def settle(session: Session, *, tenant: str, reserved_nusd: int, cost_nusd: int) -> None:
    """Release a job's reservation and count what it actually cost (0 if it never ran).

    One UPDATE in the common case (the worker's hot path), moving the row to the current
    day and month as it goes; the row is created only for a tenant that has none yet.
    When the spending crosses an alert ratio of a cap for the first time in the period,
    the budget.threshold event is written in the same transaction.
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

    def apply() -> Row[Any] | None:
        return session.connection().execute(_SETTLE, params).first()

    row = apply()
    if row is None and _ensure_row(session, tenant):
        row = apply()
    if row is None or cost_nusd <= 0 or (row.daily_nusd is None and row.monthly_nusd is None):
        return
    for period, key, spent, cap, sent_key, sent_level in (
        ("day", day, row.spent_day_nusd, row.daily_nusd, row.alert_day, row.alert_day_level),
        ("month", month, row.spent_month_nusd, row.monthly_nusd, row.alert_month,
         row.alert_month_level),
    ):  # fmt: skip
        ratios = tuple(row.alert_ratios or DEFAULT_ALERT_RATIOS)
        level = _level(spent, cap, ratios)
        if level > (sent_level if sent_key == key else 0):
            _alert(
                session, tenant, period=period, key=key, level=level, ratios=ratios,
                spent=spent, cap=cap, now=now,
            )  # fmt: skip


def _level(spent: int, cap: int | None, ratios: Sequence[float]) -> int:
    """How many of the (ascending) ratios of ``cap`` the spending reached (0: none)."""
    if not cap:
        return 0
    return sum(1 for ratio in sorted(ratios) if spent >= ratio * cap)


def _alert(
    session: Session,
    tenant: str,
    *,
    period: str,
    key: str,
    level: int,
    ratios: Sequence[float],
    spent: int,
    cap: int,
    now: datetime,
) -> None:
    """Record that ``level`` was reached in the period, and write the event if this
    transaction is the one that raised it (two settles crossing together: one event)."""
    key_column, level_column = (
        (BUDGETS.c.alert_day, BUDGETS.c.alert_day_level)
        if period == "day"
        else (BUDGETS.c.alert_month, BUDGETS.c.alert_month_level)
    )
    raised = session.execute(
        update(BUDGETS)
        .where(
            BUDGETS.c.tenant == tenant,
            or_(key_column.is_(None), key_column != key, level_column < level),
        )
        .values({key_column: key, level_column: level})
    )
    if not raised.rowcount:  # type: ignore[attr-defined]
        return
    ratio = sorted(ratios)[level - 1]
    payload = {
        "type": EventType.BUDGET_THRESHOLD.value,
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "data": {
            "object": "budget", "tenant": tenant, "period": period, "period_key": key,
            "ratio": ratio, "spent_usd": usd_text(spent), "cap_usd": usd_text(cap),
        },
    }  # fmt: skip
    # The payload is frozen now: the counters move on and the sender could not rebuild it.
    record_event(
        session,
        NewEvent(tenant, EventType.BUDGET_THRESHOLD, f"{period}:{key}", payload=payload),
    )


def tenants(session: Session) -> list[str]:
    return list(session.scalars(select(Budget.tenant).order_by(Budget.tenant)))
