"""What a tenant reads and does about its webhook deliveries: the attempt log, deliveries
by state (pages, newest first) and replays. Re-exported by models/webhook_deliveries.py.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select, update
from sqlalchemy.orm import Session

from visionq.models.batchjobs import chunks
from visionq.models.jobs import InvalidCursorError
from visionq.models.tables import (
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS,
    WEBHOOK_EVENTS,
    EndpointKind,
    utcnow,
)
from visionq.models.webhook_fanout import insert_if_absent
from visionq.models.webhook_outbox import EventType

_A = WEBHOOK_ATTEMPTS.c
_D = WEBHOOK_DELIVERIES.c
_E = WEBHOOK_ENDPOINTS.c
_V = WEBHOOK_EVENTS.c
# A replay resets these; "pending" and "sending" ones are on their way already.
REPLAYABLE = ("failed", "skipped", "succeeded")


class EventNotFound(LookupError):
    """No such event of the tenant that the endpoint could be sent."""


@dataclass(frozen=True)
class AttemptRow:
    """One line of the delivery log."""

    event_id: str
    event_type: str
    attempt: int
    at: datetime
    outcome: str
    status_code: int | None
    latency_ms: int | None
    error: str | None
    replay: bool


@dataclass(frozen=True)
class DeliveryRow:
    """One event's delivery to an endpoint."""

    id: int
    event_id: str
    event_type: str
    url: str
    state: str
    attempts: int
    replays: int
    next_attempt_at: datetime | None  # None unless pending
    last_status: int | None
    last_error: str | None
    created_at: datetime
    succeeded_at: datetime | None


def _encode(at: datetime, row_id: int) -> str:
    raw = json.dumps([at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        moment = datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError, RecursionError) as exc:
        raise InvalidCursorError(cursor) from exc
    if moment.tzinfo is None or not isinstance(row_id, int) or isinstance(row_id, bool):
        raise InvalidCursorError(cursor)
    return moment, row_id


def _newest_first(
    session: Session, query: Select[Any], at: Any, row_id: Any, *, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """Up to ``limit`` rows of ``query`` newest first (by ``at``, then ``row_id``) after the
    ``cursor``'s row, and the next page's cursor (None: the last page)."""
    if cursor:
        moment, last = _decode(cursor)
        query = query.where(or_(at < moment, and_(at == moment, row_id < last)))
    rows = session.execute(query.order_by(at.desc(), row_id.desc()).limit(limit + 1)).all()
    if len(rows) <= limit:
        return list(rows), None
    end = rows[limit - 1]._mapping
    return list(rows[:limit]), _encode(end[at], end[row_id])


def _owned(tenant: str, endpoint_id: str) -> ColumnElement[bool]:
    return select(_E.id).where(_E.id == endpoint_id, _E.tenant == tenant).exists()


def attempts_page(
    session: Session,
    *,
    tenant: str,
    endpoint_id: str,
    outcome: str | None,
    since: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[AttemptRow], str | None]:
    """A page of the endpoint's attempts, newest first, and the next page's cursor.
    ``outcome``: "succeeded", "failed" (any other outcome) or an exact outcome. Raises
    models.jobs.InvalidCursorError for a cursor this API did not make."""
    query = (
        select(
            _A.id,
            _A.event_id,
            _V.type,
            _A.attempt,
            _A.started_at,
            _A.outcome,
            _A.status_code,
            _A.latency_ms,
            _A.error,
            _A.replay,
        )
        .select_from(WEBHOOK_ATTEMPTS.join(WEBHOOK_EVENTS, _V.id == _A.event_id))
        .where(_A.endpoint_id == endpoint_id, _owned(tenant, endpoint_id))
    )
    if outcome == "failed":
        query = query.where(_A.outcome != "succeeded")
    elif outcome is not None:
        query = query.where(_A.outcome == outcome)
    if since is not None:
        query = query.where(_A.started_at >= since)
    rows, more = _newest_first(session, query, _A.started_at, _A.id, cursor=cursor, limit=limit)
    page = [
        AttemptRow(
            event_id=r.event_id,
            event_type=r.type,
            attempt=r.attempt,
            at=r.started_at,
            outcome=r.outcome,
            status_code=r.status_code,
            latency_ms=r.latency_ms,
            error=r.error,
            replay=bool(r.replay),
        )
        for r in rows
    ]
    return page, more


def deliveries_page(
    session: Session,
    *,
    tenant: str,
    endpoint_id: str,
    state: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[DeliveryRow], str | None]:
    """A page of the endpoint's deliveries (in ``state`` if given), newest first, and the
    next page's cursor (InvalidCursorError for one this API did not make)."""
    query = (
        select(
            _D.id,
            _D.event_id,
            _V.type,
            _D.url,
            _D.state,
            _D.attempts,
            _D.replays,
            _D.next_attempt_at,
            _D.last_status,
            _D.last_error,
            _D.created_at,
            _D.succeeded_at,
        )
        .select_from(WEBHOOK_DELIVERIES.join(WEBHOOK_EVENTS, _V.id == _D.event_id))
        .where(_D.endpoint_id == endpoint_id, _owned(tenant, endpoint_id))
    )
    if state is not None:
        query = query.where(_D.state == state)
    rows, more = _newest_first(session, query, _D.created_at, _D.id, cursor=cursor, limit=limit)
    page = [
        DeliveryRow(
            id=r.id,
            event_id=r.event_id,
            event_type=r.type,
            url=r.url,
            state=r.state,
            attempts=r.attempts,
            replays=r.replays,
            next_attempt_at=r.next_attempt_at if r.state == "pending" else None,
            last_status=r.last_status,
            last_error=r.last_error,
            created_at=r.created_at,
            succeeded_at=r.succeeded_at,
        )
        for r in rows
    ]
    return page, more


def replay(
    session: Session,
    *,
    tenant: str,
    endpoint_id: str,
    event_id: str | None = None,
    since: datetime | None = None,
    states: Collection[str] = ("failed", "skipped"),
    limit: int,
) -> tuple[int, bool]:
    """Send again, with a fresh retry window: one event (``event_id``: its delivery to
    this endpoint, made now if the event never fanned out to it, e.g. the endpoint was
    created later; EventNotFound if the tenant has no such event the endpoint wants), or
    the endpoint's deliveries in ``states`` made since ``since``, at most ``limit`` (the
    second value: more are left, call again). (How many were replayed, more left.)"""
    endpoint = session.execute(
        select(_E.id, _E.kind, _E.url, _E.event_mask).where(
            _E.id == endpoint_id, _E.tenant == tenant
        )
    ).first()
    if endpoint is None:
        raise EventNotFound(f"no webhook endpoint {endpoint_id} of this tenant")
    now = utcnow()
    reset = {"state": "pending", "next_attempt_at": now, "window_started_at": now,
             "attempts": 0, "replays": _D.replays + 1, "claim": None,
             "claim_expires_at": None, "updated_at": now}  # fmt: skip
    if event_id is not None:
        return _replay_one(
            session, endpoint, tenant=tenant, event_id=event_id, reset=reset, now=now
        ), False
    wanted = [state for state in states if state in REPLAYABLE]
    query = select(_D.id).where(_D.endpoint_id == endpoint_id, _D.state.in_(wanted))
    if since is not None:
        query = query.where(_D.created_at >= since)
    ids = list(session.scalars(query.order_by(_D.id).limit(limit + 1)))
    replayed = 0
    for chunk in chunks(ids[:limit]):
        done = session.execute(
            update(WEBHOOK_DELIVERIES).where(_D.id.in_(chunk), _D.state.in_(wanted)).values(**reset)
        )
        replayed += int(done.rowcount)  # type: ignore[attr-defined]
    return replayed, len(ids) > limit


def _replay_one(
    session: Session, endpoint: Any, *, tenant: str, event_id: str, reset: dict[str, Any],
    now: datetime,
) -> int:  # fmt: skip
    event = session.execute(
        select(_V.id, _V.type, _V.callback_url, _V.fanned_out_at).where(
            _V.id == event_id, _V.tenant == tenant
        )
    ).first()
    if event is None:
        raise EventNotFound(f"no webhook event {event_id} of this tenant")
    done = session.execute(
        update(WEBHOOK_DELIVERIES)
        .where(_D.event_id == event_id, _D.endpoint_id == endpoint.id, _D.state.in_(REPLAYABLE))
        .values(**reset)
    )
    if done.rowcount:  # type: ignore[attr-defined]
        return 1
    exists = session.scalar(
        select(_D.id).where(_D.event_id == event_id, _D.endpoint_id == endpoint.id)
    )
    if exists is not None:
        return 0  # pending or being sent: on its way already
    if endpoint.kind == EndpointKind.CALLBACKS:
        url = event.callback_url
    else:
        url = endpoint.url if endpoint.event_mask & EventType(event.type).bit else None
    if not url:
        raise EventNotFound(f"webhook endpoint {endpoint.id} does not take {event.type} events")
    if event.fanned_out_at is None:
        return 0  # the relay's fan-out makes this delivery shortly: on its way already
    # If absent: a concurrent replay of the same event may have made it meanwhile.
    insert_if_absent(session, [{"event_id": event_id, "endpoint_id": endpoint.id, "url": url,
                                "created_at": now, **reset, "replays": 1}])  # fmt: skip
    return 1
