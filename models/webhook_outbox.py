"""The webhook outbox: an event row written in the same transaction as what it announces
(a job's end, a batch's completion, a budget crossing a threshold), so an event is never
lost nor sent for something that rolled back. The relay (worker/webhook_relay.py) fans
events out to deliveries later.

Cheap when nobody listens: an event is written only for a tenant with an endpoint that
wants its type (one indexed probe of a small table), or when it has a callback URL.
"""

from __future__ import annotations

import base64
import enum
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Integer, bindparam, exists, insert, literal, select
from sqlalchemy.orm import Session

from visionq.models.tables import WEBHOOK_ENDPOINTS, WEBHOOK_EVENTS, EndpointKind, utcnow


class EventType(enum.StrEnum):
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    BATCH_COMPLETED = "batch.completed"
    BUDGET_THRESHOLD = "budget.threshold"

    @property
    def bit(self) -> int:
        """This type's bit in ``webhook_endpoints.event_mask``."""
        return _BITS[self]


_BITS = {kind: 1 << position for position, kind in enumerate(EventType)}
_BY_STATUS = {
    "succeeded": EventType.JOB_SUCCEEDED,
    "failed": EventType.JOB_FAILED,
    "cancelled": EventType.JOB_CANCELLED,
}
JOB_EVENT_TYPES = tuple(_BY_STATUS.values())


def mask_of(types: Iterable[str]) -> int:
    """The event_mask of these event types; ValueError (naming the known ones) for any other."""
    mask = 0
    for name in types:
        try:
            mask |= EventType(name).bit
        except ValueError:
            known = ", ".join(kind.value for kind in EventType)
            raise ValueError(f"unknown event type {name!r}: use one of {known}") from None
    return mask


def job_event_type(status: str) -> EventType:
    """The event a job ending with ``status`` sends (ValueError for a non-terminal status)."""
    try:
        return _BY_STATUS[status]
    except KeyError:
        raise ValueError(f"a job with status {status!r} has not ended: no event") from None


def new_event_id() -> str:
    """A Standard Webhooks message id: ``msg_`` and 26 base32 characters of a uuid4."""
    return "msg_" + base64.b32encode(uuid.uuid4().bytes).decode().rstrip("=").lower()


@dataclass(frozen=True)
class NewEvent:
    """An event to write. ``payload``, when given, is frozen now (events whose data is not
    in any row later, such as budget.threshold); else the sender builds it at first send."""

    tenant: str
    type: EventType
    subject_id: str
    callback_url: str | None = None
    payload: dict[str, Any] | None = None


# Built once: these run at every job end (the worker's hot path).
_LISTENS = (
    select(literal(1))
    .select_from(WEBHOOK_ENDPOINTS)
    .where(
        WEBHOOK_ENDPOINTS.c.tenant == bindparam("listen_tenant"),
        WEBHOOK_ENDPOINTS.c.kind == EndpointKind.ENDPOINT.value,
        WEBHOOK_ENDPOINTS.c.event_mask.op("&")(bindparam("listen_bit", type_=Integer)) != 0,
    )
    .limit(1)
)
_INSERT_EVENT = insert(WEBHOOK_EVENTS)


def listens_clause(tenant: ColumnElement[str]) -> ColumnElement[bool]:
    """The probe of tenant_listens as an expression on ``tenant`` (a column of the
    statement it goes in), bit bound as ``listen_bit``: a job's ending UPDATE returns it,
    so the hot path pays no statement of its own for it."""
    return exists().where(
        WEBHOOK_ENDPOINTS.c.tenant == tenant,
        WEBHOOK_ENDPOINTS.c.kind == EndpointKind.ENDPOINT.value,
        WEBHOOK_ENDPOINTS.c.event_mask.op("&")(bindparam("listen_bit", type_=Integer)) != 0,
    )


def tenant_listens(session: Session, tenant: str, bit: int) -> bool:
    """True when the tenant has an endpoint (enabled or not: a disabled one records its
    deliveries as skipped, for a replay) that wants the event type of ``bit``."""
    found = session.connection().execute(_LISTENS, {"listen_tenant": tenant, "listen_bit": bit})
    return found.first() is not None


def _row(event: NewEvent) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": new_event_id(),
        "tenant": event.tenant,
        "type": event.type.value,
        "subject_id": event.subject_id,
        "callback_url": event.callback_url,
        "occurred_at": utcnow(),
    }
    # Left out when None: a JSON column stores a given None as JSON null, not SQL NULL,
    # and the sender freezes the payload "WHERE payload IS NULL".
    if event.payload is not None:
        row["payload"] = event.payload
    return row


def record_event(session: Session, event: NewEvent, *, listens: bool | None = None) -> str | None:
    """Write the event in the caller's transaction; its id, or None when nobody listens
    (no callback URL and no endpoint of the tenant wants the type: nothing written).
    ``listens``: the caller's statement already probed (listens_clause); None: probe now."""
    if event.callback_url is None:
        if listens is None:
            listens = tenant_listens(session, event.tenant, event.type.bit)
        if not listens:
            return None
    row = _row(event)
    session.connection().execute(_INSERT_EVENT, row)
    return str(row["id"])


def record_events(session: Session, events: Sequence[NewEvent]) -> int:
    """Write many events (one probe per tenant and type, one executemany); how many were
    written."""
    listens: dict[tuple[str, EventType], bool] = {}
    rows: list[dict[str, Any]] = []
    for event in events:
        if event.callback_url is None:
            key = (event.tenant, event.type)
            if key not in listens:
                listens[key] = tenant_listens(session, event.tenant, event.type.bit)
            if not listens[key]:
                continue
        rows.append(_row(event))
    # An executemany needs the same keys in every row: with and without a payload apart.
    for same_keys in (
        [row for row in rows if "payload" in row],
        [row for row in rows if "payload" not in row],
    ):
        if same_keys:
            session.connection().execute(_INSERT_EVENT, same_keys)
    return len(rows)
