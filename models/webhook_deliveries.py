"""Webhook deliveries: one per (event, endpoint), the retry state machine the relay and the
delivery task move along (issue 21, the database schedules retries; Celery only carries
"send now").

    pending --claim--> sending --2xx--> succeeded
       ^                  |--failure--> pending (next_attempt_at) | failed (past the window)
       |                  '--410------> failed (endpoint disabled)
       '--reclaim (claim expired: the sender died) / replay (failed, skipped, succeeded)
    skipped: the endpoint is disabled (a replay after enabling it sends them)

Every step is a conditional UPDATE (or an insert behind a conditional UPDATE), so several
relays and senders can run at once: each delivery is claimed by one, and an attempt is
recorded only under the claim that sent it (models/webhook_record.py). The delivery log,
its pages and replays are in models/webhook_log.py, the fan-out in models/webhook_fanout.py.
All are re-exported here.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from visionq.models.batchjobs import chunks
from visionq.models.tables import (
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS,
    WEBHOOK_EVENTS,
    EndpointKind,
)
from visionq.models.webhook_endpoints import (
    EndpointRow,
    endpoint_row,
)
from visionq.models.webhook_fanout import FanOut, fan_out
from visionq.models.webhook_log import (
    AttemptRow,
    DeliveryRow,
    EventNotFound,
    attempts_page,
    deliveries_page,
    replay,
)
from visionq.models.webhook_record import (
    AttemptResult,
    DeliveryJob,
    DeliveryState,
    record_attempt,
)

__all__ = [
    "AttemptResult",
    "AttemptRow",
    "DeliveryJob",
    "DeliveryRow",
    "DeliveryState",
    "EventNotFound",
    "FanOut",
    "attempts_page",
    "claim_delivery",
    "deliveries_page",
    "due_deliveries",
    "fan_out",
    "freeze_payload",
    "load_claimed",
    "reclaim_expired",
    "record_attempt",
    "replay",
]

_D = WEBHOOK_DELIVERIES.c
_E = WEBHOOK_ENDPOINTS.c
_V = WEBHOOK_EVENTS.c


def reclaim_expired(session: Session, *, now: datetime) -> int:
    """Put back to pending the deliveries whose sender's claim expired (it died mid-send,
    or its message was lost): sent again now, so a receiver may see one twice."""
    reclaimed = session.execute(
        update(WEBHOOK_DELIVERIES)
        .where(_D.state == DeliveryState.SENDING.value, _D.claim_expires_at < now)
        .values(
            state="pending", next_attempt_at=now, claim=None, claim_expires_at=None, updated_at=now
        )
    )
    return int(reclaimed.rowcount)  # type: ignore[attr-defined]


def due_deliveries(session: Session, *, now: datetime, max_in_flight: int, limit: int) -> list[int]:
    """Ids of pending deliveries due now, oldest due first, at most ``max_in_flight``
    sending per endpoint (1 while it is failing: one probe at a time, not one request per
    event to a receiver that is down) and ``limit`` in all."""
    due_per_endpoint = session.execute(
        select(_D.endpoint_id, func.min(_D.next_attempt_at).label("first"))
        .where(_D.state == DeliveryState.PENDING.value, _D.next_attempt_at <= now)
        .group_by(_D.endpoint_id)
    ).all()
    if not due_per_endpoint:
        return []
    endpoint_ids = [row.endpoint_id for row in due_per_endpoint]
    failing: dict[str, bool] = {}
    sending: dict[str, int] = {}
    for chunk in chunks(endpoint_ids):
        failing.update(
            (row.id, row.failing_since is not None and row.kind == EndpointKind.ENDPOINT.value)
            for row in session.execute(
                select(_E.id, _E.failing_since, _E.kind).where(_E.id.in_(chunk))
            )
        )
        sending.update(
            (row.endpoint_id, int(row.n))
            for row in session.execute(
                select(_D.endpoint_id, func.count().label("n"))
                .where(_D.state == DeliveryState.SENDING.value, _D.endpoint_id.in_(chunk))
                .group_by(_D.endpoint_id)
            )
        )
    picked: list[int] = []
    for row in sorted(due_per_endpoint, key=lambda r: r.first):
        room = (1 if failing.get(row.endpoint_id) else max_in_flight) - sending.get(
            row.endpoint_id, 0
        )
        room = min(room, limit - len(picked))
        if room <= 0:
            continue
        picked.extend(
            session.scalars(
                select(_D.id)
                .where(
                    _D.endpoint_id == row.endpoint_id,
                    _D.state == DeliveryState.PENDING.value,
                    _D.next_attempt_at <= now,
                )
                .order_by(_D.next_attempt_at, _D.id)
                .limit(room)
            )
        )
        if len(picked) >= limit:
            break
    return picked


def claim_delivery(session: Session, delivery_id: int, *, token: str, expires_at: datetime) -> bool:
    """Take a pending delivery for sending under ``token`` until ``expires_at``; False when
    another relay took it first (or it is no longer pending)."""
    claimed = session.execute(
        update(WEBHOOK_DELIVERIES)
        .where(_D.id == delivery_id, _D.state == DeliveryState.PENDING.value)
        .values(state="sending", claim=token, claim_expires_at=expires_at)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


_ENDPOINT_COLUMNS = [getattr(_E, f.name).label(f"e_{f.name}") for f in fields(EndpointRow)]


def load_claimed(session: Session, delivery_id: int, claim: str) -> DeliveryJob | None:
    """The delivery if it is being sent under ``claim``; None for a stale message."""
    row = session.execute(
        select(
            _D.id,
            _D.event_id,
            _D.url,
            _D.attempts,
            _D.window_started_at,
            _D.replays,
            _V.type,
            _V.tenant,
            _V.subject_id,
            _V.payload,
            _V.occurred_at,
            *_ENDPOINT_COLUMNS,
        )
        .select_from(
            WEBHOOK_DELIVERIES.join(WEBHOOK_EVENTS, _V.id == _D.event_id).join(
                WEBHOOK_ENDPOINTS, _E.id == _D.endpoint_id
            )
        )
        .where(_D.id == delivery_id, _D.state == DeliveryState.SENDING.value, _D.claim == claim)
    ).first()
    if row is None:
        return None
    endpoint = endpoint_row(_Prefixed(row._mapping, "e_"))
    # An endpoint's URL may have changed since the fan-out: sent to the current one.
    url = endpoint.url if endpoint.kind == EndpointKind.ENDPOINT and endpoint.url else row.url
    return DeliveryJob(
        delivery_id=row.id, event_id=row.event_id, event_type=row.type, tenant=row.tenant,
        subject_id=row.subject_id, url=url, endpoint=endpoint, payload=row.payload,
        occurred_at=row.occurred_at, attempts=row.attempts,
        window_started_at=row.window_started_at, replays=row.replays,
    )  # fmt: skip


class _Prefixed:
    """Attribute access to the ``prefix``-named columns of a row mapping."""

    def __init__(self, mapping: Any, prefix: str) -> None:
        self._mapping = mapping
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return self._mapping[self._prefix + name]


def freeze_payload(session: Session, event_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Store the event's payload unless one is stored already; the stored one (the same
    bytes go out on every attempt, to every endpoint, and on replays)."""
    session.execute(
        update(WEBHOOK_EVENTS)
        .where(_V.id == event_id, _V.payload.is_(None))
        .values(payload=payload)
    )
    stored = session.scalar(select(_V.payload).where(_V.id == event_id))
    return dict(stored) if stored is not None else payload


def states_of(session: Session, delivery_ids: Collection[int]) -> dict[int, str]:
    """The current state of each delivery (tests and the relay's report)."""
    found: dict[int, str] = {}
    for chunk in chunks(delivery_ids):
        found.update(session.execute(select(_D.id, _D.state).where(_D.id.in_(chunk))).tuples())
    return found
