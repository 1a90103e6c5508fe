"""Which webhook deliveries are sent now, and the claims that fence their senders (issue 21).

A relay picks due deliveries (``due_deliveries``: at most ``max_in_flight`` sending per
receiver, one while it is failing) and claims each for a while long enough for its
message to wait in the queue (``claim_delivery``); the sender that starts extends the claim
to its own deadline (``start_claimed``), so a message that waited does not get its delivery
sent twice: before the start another relay may reclaim it (the late message is then stale
and sends nothing), after it nobody does until the attempt's deadline has passed.
``reclaim_expired`` gives back what no sender finished and counts that as an attempt
(outcome ``lost``), so a delivery nobody ever sends still ends ``failed`` at its window's
end, with a reason. Re-exported by models/webhook_deliveries.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, and_, insert, or_, select, update
from sqlalchemy.orm import Session

from visionq.models.batchjobs import chunks
from visionq.models.tables import (
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS,
    WEBHOOK_EVENTS,
    EndpointKind,
)
from visionq.models.webhook_endpoints import EndpointRow, endpoint_row
from visionq.models.webhook_record import FAILING_AFTER, DeliveryJob, DeliveryState

_A = WEBHOOK_ATTEMPTS.c
_D = WEBHOOK_DELIVERIES.c
_E = WEBHOOK_ENDPOINTS.c
_V = WEBHOOK_EVENTS.c

# due_deliveries reads at most SCAN_PASSES pages of due rows (each ``limit`` * SCAN_FACTOR
# long, oldest due first): a backlog of 100,000 due rows is not aggregated every tick.
SCAN_FACTOR = 4
SCAN_PASSES = 3
# A callback URL's host is failing when its last FAILING_AFTER attempts among the
# callbacks endpoint's RECENT_ATTEMPTS latest ones failed.
RECENT_ATTEMPTS = 200
# Outcomes that say nothing about the receiver (visionq's own failures).
_OURS = ("internal_error", "lost")


def _held(delivery_id: int, claim: str | None) -> ColumnElement[bool]:
    # The fence of every write and read under a claim: still sending under that claim.
    return and_(_D.id == delivery_id, _D.state == DeliveryState.SENDING.value, _D.claim == claim)


def claim_delivery(session: Session, delivery_id: int, *, token: str, expires_at: datetime) -> bool:
    """Take a pending delivery for sending under ``token`` until ``expires_at`` (its message
    may wait in the queue until then); False when another relay took it first (or it is no
    longer pending)."""
    claimed = session.execute(
        update(WEBHOOK_DELIVERIES)
        .where(_D.id == delivery_id, _D.state == DeliveryState.PENDING.value)
        .values(state="sending", claim=token, claim_expires_at=expires_at)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def release_claim(session: Session, delivery_id: int, token: str) -> bool:
    """Give a claimed delivery back, as it was, when its message could not be sent (the
    broker is down): the next tick tries again; False when the claim is not held."""
    released = session.execute(
        update(WEBHOOK_DELIVERIES)
        .where(_held(delivery_id, token))
        .values(state=DeliveryState.PENDING.value, claim=None, claim_expires_at=None)
    )
    return bool(released.rowcount)  # type: ignore[attr-defined]


_ENDPOINT_COLUMNS = [getattr(_E, f.name).label(f"e_{f.name}") for f in fields(EndpointRow)]
_DELIVERY_COLUMNS = [
    _D.id, _D.event_id, _D.url, _D.attempts, _D.window_started_at, _D.replays,
    _D.next_attempt_at, _V.type, _V.tenant, _V.subject_id, _V.payload, _V.occurred_at,
]  # fmt: skip


def start_claimed(
    session: Session, delivery_id: int, claim: str, *, expires_at: datetime
) -> DeliveryJob | None:
    """The sender starts: the delivery if ``claim`` still holds it, its claim extended to
    ``expires_at`` (the attempt's deadline and a margin); None for a stale message (the
    claim expired and was reclaimed meanwhile, or the attempt was recorded)."""
    extended = session.execute(
        update(WEBHOOK_DELIVERIES)
        .where(_held(delivery_id, claim))
        .values(claim_expires_at=expires_at)
    )
    if not extended.rowcount:  # type: ignore[attr-defined]
        return None
    return load_claimed(session, delivery_id, claim)


def load_claimed(session: Session, delivery_id: int, claim: str) -> DeliveryJob | None:
    """The delivery if it is being sent under ``claim``; None for a stale message."""
    row = session.execute(
        select(*_DELIVERY_COLUMNS, *_ENDPOINT_COLUMNS)
        .select_from(
            WEBHOOK_DELIVERIES.join(WEBHOOK_EVENTS, _V.id == _D.event_id).join(
                WEBHOOK_ENDPOINTS, _E.id == _D.endpoint_id
            )
        )
        .where(_held(delivery_id, claim))
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
        due_at=row.next_attempt_at,
    )  # fmt: skip


class _Prefixed:
    """Attribute access to the ``prefix``-named columns of a row mapping."""

    def __init__(self, mapping: Any, prefix: str) -> None:
        self._mapping = mapping
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return self._mapping[self._prefix + name]


@dataclass(frozen=True)
class Lost:
    """A delivery whose claim expired with no attempt recorded (for the metric)."""

    tenant: str
    event_type: str
    failed: bool  # past its window: ended failed


def reclaim_expired(session: Session, *, now: datetime, window_s: float) -> list[Lost]:
    """Give back the deliveries whose claim expired with nothing recorded (the sender died
    mid-send, its message was lost or waited in the queue past the claim): each counts as
    an attempt, outcome ``lost`` in the log; pending and due now within the retry window
    (a receiver may see it twice), ``failed`` past it, with a reason the tenant can read."""
    expired = list(
        session.execute(
            select(_D.id, _D.claim, _D.window_started_at).where(
                _D.state == DeliveryState.SENDING.value, _D.claim_expires_at < now
            )
        )
    )
    lost: list[Lost] = []
    for row in expired:
        past = row.window_started_at + timedelta(seconds=window_s) <= now
        error = (
            "no attempt finished under the claim (no worker took the message in time, or its "
            "sender died); is a worker consuming the visionq.webhooks queue, with free slots?"
        )
        values: dict[str, Any] = {
            "attempts": _D.attempts + 1, "claim": None, "claim_expires_at": None,
            "updated_at": now, "last_status": None,
            "last_error": ("past the retry window: " if past else "") + error,
        }  # fmt: skip
        if past:
            values["state"] = DeliveryState.FAILED.value
        else:
            values |= {"state": DeliveryState.PENDING.value, "next_attempt_at": now}
        taken = session.execute(
            update(WEBHOOK_DELIVERIES)
            .where(_held(row.id, row.claim))
            .values(**values)
            .returning(_D.endpoint_id, _D.event_id, _D.attempts, _D.replays)
        ).first()
        if taken is None:
            continue  # recorded or reclaimed by another relay meanwhile
        session.execute(
            insert(WEBHOOK_ATTEMPTS).values(
                delivery_id=row.id, endpoint_id=taken.endpoint_id, event_id=taken.event_id,
                attempt=taken.attempts, replay=taken.replays > 0, started_at=now,
                latency_ms=None, outcome="lost", status_code=None, error=error[:500],
            )
        )  # fmt: skip
        event = session.execute(select(_V.tenant, _V.type).where(_V.id == taken.event_id)).one()
        lost.append(Lost(event.tenant, event.type, past))
    return lost


def receiver_key(kind: str, endpoint_id: str, url: str) -> tuple[str, str]:
    """Who receives: an endpoint, or for the callbacks endpoint each callback URL's host
    (one dead host does not hold the in-flight slots of the tenant's other callback URLs)."""
    if kind != EndpointKind.CALLBACKS.value:
        return (endpoint_id, "")
    return (endpoint_id, urlsplit(url).netloc.rpartition("@")[2].lower())


def due_deliveries(session: Session, *, now: datetime, max_in_flight: int, limit: int) -> list[int]:
    """Ids of pending deliveries due now, oldest due first, at most ``max_in_flight``
    sending per receiver (an endpoint, or one host of the callback URLs) and 1 while it is
    failing (one probe at a time, not one request per event to a receiver that is down),
    ``limit`` in all. Reads the sending rows and a few pages of the oldest due ones."""
    sending_rows = list(
        session.execute(
            select(_D.endpoint_id, _D.url).where(_D.state == DeliveryState.SENDING.value)
        )
    )
    endpoints: dict[str, Any] = {}
    _load_endpoints(session, {row.endpoint_id for row in sending_rows}, endpoints)
    sending = Counter(
        receiver_key(endpoints[r.endpoint_id].kind, r.endpoint_id, r.url)
        for r in sending_rows
        if r.endpoint_id in endpoints
    )
    room: dict[tuple[str, str], int] = {}
    failing_hosts: dict[str, set[str]] = {}
    picked: list[int] = []
    full: set[str] = set()  # endpoints (not callbacks) with no room left: skipped by the scan
    after: tuple[datetime, int] | None = None
    page = max(limit * SCAN_FACTOR, 100)
    for _ in range(SCAN_PASSES):
        query = select(_D.id, _D.endpoint_id, _D.url, _D.next_attempt_at).where(
            _D.state == DeliveryState.PENDING.value, _D.next_attempt_at <= now
        )
        if after is not None:
            query = query.where(
                or_(
                    _D.next_attempt_at > after[0],
                    and_(_D.next_attempt_at == after[0], _D.id > after[1]),
                )
            )
        if full:
            query = query.where(_D.endpoint_id.not_in(sorted(full)))
        rows = list(session.execute(query.order_by(_D.next_attempt_at, _D.id).limit(page)))
        _load_endpoints(session, {row.endpoint_id for row in rows}, endpoints)
        for row in rows:
            endpoint = endpoints.get(row.endpoint_id)
            if endpoint is None:
                continue
            key = receiver_key(endpoint.kind, row.endpoint_id, row.url)
            if key not in room:
                if endpoint.kind == EndpointKind.CALLBACKS.value:
                    if row.endpoint_id not in failing_hosts:
                        failing_hosts[row.endpoint_id] = _failing_hosts(session, row.endpoint_id)
                    failing = key[1] in failing_hosts[row.endpoint_id]
                else:
                    failing = endpoint.failing_since is not None
                room[key] = (1 if failing else max_in_flight) - sending[key]
            if room[key] <= 0:
                continue
            room[key] -= 1
            picked.append(row.id)
            if len(picked) >= limit:
                return picked
        if len(rows) < page:
            break
        after = (rows[-1].next_attempt_at, rows[-1].id)
        full |= {
            endpoint_id for (endpoint_id, host), left in room.items() if not host and left <= 0
        }
    return picked


def _load_endpoints(session: Session, ids: Iterable[str], into: dict[str, Any]) -> None:
    """The kind and health of the endpoints ``ids`` not loaded yet."""
    missing = [endpoint_id for endpoint_id in ids if endpoint_id not in into]
    for chunk in chunks(missing):
        into.update(
            (row.id, row)
            for row in session.execute(
                select(_E.id, _E.kind, _E.failing_since).where(_E.id.in_(chunk))
            )
        )


def _failing_hosts(session: Session, callbacks_id: str) -> set[str]:
    """The callback hosts of a callbacks endpoint whose last FAILING_AFTER attempts (among
    its RECENT_ATTEMPTS latest) all failed: sent one at a time, as a failing endpoint is."""
    recent = session.execute(
        select(_A.outcome, _D.url)
        .select_from(WEBHOOK_ATTEMPTS.join(WEBHOOK_DELIVERIES, _D.id == _A.delivery_id))
        .where(_A.endpoint_id == callbacks_id, _A.outcome.not_in(_OURS))
        .order_by(_A.started_at.desc(), _A.id.desc())
        .limit(RECENT_ATTEMPTS)
    )
    latest: dict[str, list[str]] = {}
    for outcome, url in recent:
        outcomes = latest.setdefault(receiver_key(EndpointKind.CALLBACKS.value, "", url)[1], [])
        if len(outcomes) < FAILING_AFTER:
            outcomes.append(outcome)
    return {
        host
        for host, outcomes in latest.items()
        if len(outcomes) == FAILING_AFTER and "succeeded" not in outcomes
    }
