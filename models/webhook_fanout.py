"""Fan-out: an outbox event becomes one delivery per listening endpoint (and one to its
callback URL). Re-exported by models/webhook_deliveries.py.

One event must never hold up the others: deliveries are inserted if absent (a replay may
have made one already: the unique key (event_id, endpoint_id) is the arbiter, with the
dialect's ON CONFLICT DO NOTHING), and an event that cannot be fanned out (a type this
version does not know, a row the database refuses) is stamped like the others, logged and
counted instead of rolling back the whole page every tick. Infrastructure errors (the
database restarting) still roll the page back: it is taken again on the next tick.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from visionq.models.batchjobs import chunks
from visionq.models.tables import (
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS,
    WEBHOOK_EVENTS,
    EndpointKind,
)
from visionq.models.webhook_endpoints import callbacks_endpoint
from visionq.models.webhook_outbox import EventType
from visionq.models.webhook_record import DeliveryState

log = logging.getLogger(__name__)

_E = WEBHOOK_ENDPOINTS.c
_V = WEBHOOK_EVENTS.c
# A row refused for what it holds (a foreign key gone meanwhile, a value too long), not
# because the database is unreachable.
_ROW_ERRORS = (IntegrityError, DataError)


@dataclass
class FanOut:
    """What one fan-out did: events fanned out by type, and the ids of events that could
    not be (fully) fanned out (stamped anyway, logged)."""

    by_type: Counter[str] = field(default_factory=Counter)
    unfannable: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        """How many events this fan-out took (fanned out or not)."""
        return sum(self.by_type.values()) + len(self.unfannable)


def insert_if_absent(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert deliveries, leaving out those whose (event, endpoint) exists already."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    statement: Insert
    if dialect == "postgresql":
        statement = postgresql.insert(WEBHOOK_DELIVERIES).on_conflict_do_nothing(
            index_elements=["event_id", "endpoint_id"]
        )
    elif dialect == "sqlite":
        statement = sqlite.insert(WEBHOOK_DELIVERIES).on_conflict_do_nothing(
            index_elements=["event_id", "endpoint_id"]
        )
    else:  # pragma: no cover - visionq runs on SQLite and PostgreSQL only
        statement = insert(WEBHOOK_DELIVERIES)
    session.execute(statement, list(rows))


def fan_out(session: Session, *, now: datetime, limit: int = 500) -> FanOut:
    """Make the deliveries of up to ``limit`` events not fanned out yet (oldest first): one
    per endpoint of the tenant that wants the type (``skipped`` when it is disabled) and
    one to the event's callback URL (signed by the tenant's callbacks endpoint). Each
    event is taken by one relay: the conditional UPDATE of ``fanned_out_at`` in this
    transaction decides."""
    done = FanOut()
    page = list(
        session.scalars(
            select(_V.id).where(_V.fanned_out_at.is_(None)).order_by(_V.occurred_at).limit(limit)
        )
    )
    if not page:
        return done
    taken = session.execute(
        update(WEBHOOK_EVENTS)
        .where(_V.id.in_(page), _V.fanned_out_at.is_(None))
        .values(fanned_out_at=now)
        .returning(_V.id, _V.tenant, _V.type, _V.callback_url)
    ).all()
    listening = _listening(session, {event.tenant for event in taken})
    common = {"attempts": 0, "replays": 0, "next_attempt_at": now, "window_started_at": now,
              "created_at": now, "updated_at": now}  # fmt: skip
    callbacks: dict[str, str] = {}  # tenant -> its callbacks endpoint id
    rows: list[dict[str, Any]] = []
    types: dict[str, str] = {}
    for event in taken:
        try:
            bit = EventType(event.type).bit
        except ValueError:
            _poisoned(done, event.id, f"unknown event type {event.type!r}")
            continue
        types[event.id] = event.type
        for endpoint in listening.get(event.tenant, ()):
            if endpoint.event_mask & bit and endpoint.url:
                state = DeliveryState.PENDING if endpoint.enabled else DeliveryState.SKIPPED
                rows.append({"event_id": event.id, "endpoint_id": endpoint.id,
                             "url": endpoint.url, "state": state.value, **common})  # fmt: skip
        if event.callback_url:
            if event.tenant not in callbacks:
                callbacks[event.tenant] = callbacks_endpoint(session, event.tenant).id
            rows.append({"event_id": event.id, "endpoint_id": callbacks[event.tenant],
                         "url": event.callback_url, "state": "pending", **common})  # fmt: skip
    refused = _insert(session, rows)
    for event_id, event_type in types.items():
        if event_id in refused:
            _poisoned(done, event_id, refused[event_id])
        else:
            done.by_type[event_type] += 1
    return done


def _listening(session: Session, tenants: set[str]) -> dict[str, list[Any]]:
    """The tenants' own endpoints (not callbacks), by tenant."""
    listening: dict[str, list[Any]] = {tenant: [] for tenant in tenants}
    for tenants_chunk in chunks(tenants):
        for endpoint in session.execute(
            select(_E.id, _E.tenant, _E.url, _E.enabled, _E.event_mask).where(
                _E.tenant.in_(tenants_chunk), _E.kind == EndpointKind.ENDPOINT.value
            )
        ):
            listening[endpoint.tenant].append(endpoint)
    return listening


def _insert(session: Session, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Insert the rows (if absent); when the database refuses the lot, row by row so only the
    refused rows are left out. {event id: why} of the refused ones."""
    try:
        with session.begin_nested():
            for chunk in chunks(rows):
                insert_if_absent(session, chunk)
        return {}
    except _ROW_ERRORS:
        pass
    refused: dict[str, str] = {}
    for row in rows:
        try:
            with session.begin_nested():
                insert_if_absent(session, [row])
        except _ROW_ERRORS as exc:
            refused[row["event_id"]] = (
                f"delivery to endpoint {row['endpoint_id']} refused: "
                + (str(exc.orig) if exc.orig is not None else type(exc).__name__)[:300]
            )
    return refused


def _poisoned(done: FanOut, event_id: str, why: str) -> None:
    done.unfannable.append(event_id)
    # An error: someone has to look (the event is stamped and will not be tried again).
    log.error(
        "webhook event %s could not be fanned out (%s); stamped so it holds up no other event",
        event_id, why, extra={"event_id": event_id},
    )  # fmt: skip
