"""A tenant's webhook endpoints and their signing secrets (issue 21).

Two kinds: ``endpoint`` (made by the tenant, at most VISIONQ_WEBHOOK_MAX_ENDPOINTS) and
``callbacks`` (one per tenant, made on first use, id derived from the tenant): it signs
and logs the deliveries to per-job and per-batch callback URLs. Secrets are Standard
Webhooks ``whsec_`` keys; a rotation keeps the previous one signing for a grace period.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionq.models.tables import (
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS,
    WEBHOOK_SECRETS,
    EndpointKind,
    utcnow,
)
from visionq.models.webhook_outbox import JOB_EVENT_TYPES, EventType, mask_of
from visionq.models.webhook_tables import DisabledBy

# The namespace of callbacks endpoint ids: uuid5(NAMESPACE_VISIONQ, "callbacks:" + tenant).
NAMESPACE_VISIONQ = uuid.uuid5(uuid.NAMESPACE_URL, "https://visionq.dev/webhooks")
CALLBACK_EVENTS = (*(kind.value for kind in JOB_EVENT_TYPES), EventType.BATCH_COMPLETED.value)
# The first key of the advisory locks that serialise a tenant's endpoint creations ("vqwe");
# the second is the tenant's hashtext.
_CREATE_LOCK_SPACE = 0x76717765
# Expired secrets are kept this long after they stop signing, then deleted at a rotation.
_EXPIRED_KEPT = timedelta(days=1)


class EndpointLimit(Exception):
    """The tenant has max_endpoints endpoints already."""


@dataclass(frozen=True)
class EndpointRow:
    """An endpoint as stored (secrets apart)."""

    id: str
    tenant: str
    kind: str
    url: str | None
    description: str | None
    events: tuple[str, ...]
    include_result: bool
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None
    consecutive_failures: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    # DisabledBy while disabled (tenant: paused on purpose; visionq: after failures), else None.
    disabled_by: str | None = None


_E = WEBHOOK_ENDPOINTS.c
_ROW_COLUMNS = tuple(getattr(_E, field.name) for field in fields(EndpointRow))


def endpoint_row(row: Any) -> EndpointRow:
    """An EndpointRow from a row (anything with the columns as attributes) selected with
    every column of webhook_endpoints."""
    values = {field.name: getattr(row, field.name) for field in fields(EndpointRow)}
    values["events"] = tuple(row.events or ())
    values["include_result"] = bool(row.include_result)
    values["enabled"] = bool(row.enabled)
    return EndpointRow(**values)


def new_secret() -> str:
    """A new signing secret: ``whsec_`` and the base64 of 32 random bytes (spec: 24-64)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _select_endpoint() -> Select[Any]:
    return select(*_ROW_COLUMNS)


def _add_secret(session: Session, endpoint_id: str, now: datetime) -> str:
    secret = new_secret()
    session.execute(
        insert(WEBHOOK_SECRETS).values(endpoint_id=endpoint_id, secret=secret, created_at=now)
    )
    return secret


def create_endpoint(
    session: Session,
    *,
    tenant: str,
    url: str,
    events: Sequence[str],
    description: str | None,
    include_result: bool,
    max_endpoints: int,
) -> tuple[EndpointRow, str]:
    """Add an enabled endpoint and its first secret; (the endpoint, the secret). Raises
    EndpointLimit when the tenant has ``max_endpoints`` already (concurrent creates of a
    tenant are serialised: make it the first statement of its transaction), ValueError
    for an unknown event type. The URL is checked by the caller (models/netguard.py)."""
    mask = mask_of(events)
    _serialize_creates(session, tenant)
    count = session.scalar(
        select(func.count())
        .select_from(WEBHOOK_ENDPOINTS)
        .where(_E.tenant == tenant, _E.kind == EndpointKind.ENDPOINT.value)
    )
    if (count or 0) >= max_endpoints:
        raise EndpointLimit(f"tenant {tenant!r} has {count} webhook endpoints")
    now = utcnow()
    endpoint_id = str(uuid.uuid4())
    session.execute(
        insert(WEBHOOK_ENDPOINTS).values(
            id=endpoint_id, tenant=tenant, kind=EndpointKind.ENDPOINT.value, url=url,
            description=description, events=list(dict.fromkeys(events)), event_mask=mask,
            include_result=include_result, enabled=True, consecutive_failures=0,
            created_at=now, updated_at=now,
        )
    )  # fmt: skip
    secret = _add_secret(session, endpoint_id, now)
    row = get_endpoint(session, tenant, endpoint_id)
    assert row is not None  # inserted above, in this transaction
    return row, secret


def _serialize_creates(session: Session, tenant: str) -> None:
    """Make the tenant's endpoint creations run one after another until this transaction
    ends, so the count against ``max_endpoints`` sees every endpoint made before it: a
    transaction-scoped advisory lock on PostgreSQL (READ COMMITTED would let two creates
    both count 19 of 20); on SQLite a write first, which takes the database's write lock
    before the count (call it as the transaction's first statement)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:tenant))"),
            {"space": _CREATE_LOCK_SPACE, "tenant": tenant},
        )
        return
    session.execute(update(WEBHOOK_ENDPOINTS).where(_E.id == "").values(updated_at=_E.updated_at))


def callbacks_id(tenant: str) -> str:
    """The id of the tenant's callbacks endpoint (the same in every process)."""
    return str(uuid.uuid5(NAMESPACE_VISIONQ, "callbacks:" + tenant))


def callbacks_endpoint(session: Session, tenant: str) -> EndpointRow:
    """The tenant's callbacks endpoint, made (with its secret) if it has none yet."""
    endpoint_id = callbacks_id(tenant)
    found = get_endpoint(session, tenant, endpoint_id)
    if found is not None:
        return found
    now = utcnow()
    try:
        # A savepoint: the primary key is the arbiter between concurrent first uses.
        with session.begin_nested():
            session.execute(
                insert(WEBHOOK_ENDPOINTS).values(
                    id=endpoint_id, tenant=tenant, kind=EndpointKind.CALLBACKS.value,
                    url=None, description=None, events=list(CALLBACK_EVENTS),
                    event_mask=mask_of(CALLBACK_EVENTS), include_result=True, enabled=True,
                    consecutive_failures=0, created_at=now, updated_at=now,
                )
            )  # fmt: skip
            _add_secret(session, endpoint_id, now)
    except IntegrityError:
        pass  # made meanwhile by another request
    made = get_endpoint(session, tenant, endpoint_id)
    assert made is not None
    return made


def list_endpoints(session: Session, tenant: str) -> list[EndpointRow]:
    """The tenant's endpoints (not its callbacks endpoint), oldest first."""
    rows = session.execute(
        _select_endpoint()
        .where(_E.tenant == tenant, _E.kind == EndpointKind.ENDPOINT.value)
        .order_by(_E.created_at, _E.id)
    )
    return [endpoint_row(row) for row in rows]


def get_endpoint(session: Session, tenant: str, endpoint_id: str) -> EndpointRow | None:
    """The tenant's endpoint of that id (either kind), or None (also another tenant's)."""
    row = session.execute(
        _select_endpoint().where(_E.id == endpoint_id, _E.tenant == tenant)
    ).first()
    return None if row is None else endpoint_row(row)


def skip_pending(session: Session, endpoint_id: str, now: datetime) -> int:
    """Mark the endpoint's pending deliveries skipped (it was disabled): a replay after
    enabling it sends them. How many."""
    d = WEBHOOK_DELIVERIES.c
    skipped = session.execute(
        update(WEBHOOK_DELIVERIES)
        .where(d.endpoint_id == endpoint_id, d.state == "pending")
        .values(state="skipped", claim=None, claim_expires_at=None, updated_at=now)
    )
    return int(skipped.rowcount)  # type: ignore[attr-defined]


def update_endpoint(
    session: Session,
    tenant: str,
    endpoint_id: str,
    *,
    url: str | None = None,
    events: Sequence[str] | None = None,
    description: str | None = None,
    include_result: bool | None = None,
    enabled: bool | None = None,
) -> EndpointRow | None:
    """Change what is given (None: unchanged); the endpoint after, or None when the tenant
    has no such endpoint. ``enabled=True`` also clears the disabled and failing state;
    ``enabled=False`` disables it and skips its pending deliveries."""
    now = utcnow()
    values: dict[str, Any] = {"updated_at": now}
    if url is not None:
        values["url"] = url
    if events is not None:
        values["events"] = list(dict.fromkeys(events))
        values["event_mask"] = mask_of(events)
    if description is not None:
        values["description"] = description
    if include_result is not None:
        values["include_result"] = include_result
    if enabled is True:
        values.update(
            enabled=True, disabled_at=None, disabled_reason=None, disabled_by=None,
            failing_since=None, consecutive_failures=0,
        )  # fmt: skip
    changed = session.execute(
        update(WEBHOOK_ENDPOINTS).where(_E.id == endpoint_id, _E.tenant == tenant).values(**values)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        return None
    if enabled is False:
        # Only an enabled endpoint gets a new reason: disabling twice keeps the first one.
        session.execute(
            update(WEBHOOK_ENDPOINTS)
            .where(_E.id == endpoint_id, _E.enabled.is_(True))
            .values(
                enabled=False,
                disabled_at=now,
                disabled_reason=f"disabled by the tenant at {now:%Y-%m-%d %H:%M:%S} UTC",
                disabled_by=DisabledBy.TENANT,
            )
        )
        skip_pending(session, endpoint_id, now)
    return get_endpoint(session, tenant, endpoint_id)


def delete_endpoint(session: Session, tenant: str, endpoint_id: str) -> bool:
    """Delete the endpoint with its secrets, deliveries and their attempts (cascades);
    False when the tenant has no such endpoint. Never the callbacks endpoint: its pending
    callbacks would be lost and the next callback would make it again with a new secret,
    which every receiver would then refuse."""
    deleted = session.execute(
        delete(WEBHOOK_ENDPOINTS).where(
            _E.id == endpoint_id, _E.tenant == tenant, _E.kind == EndpointKind.ENDPOINT.value
        )
    )
    return bool(deleted.rowcount)  # type: ignore[attr-defined]


_S = WEBHOOK_SECRETS.c


def current_secret(session: Session, endpoint_id: str) -> str:
    """The endpoint's current secret (the newest never expired). LookupError if none."""
    secret = session.scalar(
        select(_S.secret)
        .where(_S.endpoint_id == endpoint_id, _S.expires_at.is_(None))
        .order_by(_S.id.desc())
        .limit(1)
    )
    if secret is None:
        raise LookupError(f"webhook endpoint {endpoint_id} has no secret")
    return str(secret)


def live_secrets(session: Session, endpoint_id: str, now: datetime) -> list[str]:
    """Every secret that signs now (the current one and those in their grace period),
    newest first: each gives one signature in webhook-signature."""
    rows = session.scalars(
        select(_S.secret)
        .where(_S.endpoint_id == endpoint_id, or_(_S.expires_at.is_(None), _S.expires_at > now))
        .order_by(_S.id.desc())
    )
    return list(rows)


def rotate_secret(
    session: Session, endpoint_id: str, *, grace_s: float
) -> tuple[str, datetime | None]:
    """Make a new current secret; the previous one keeps signing ``grace_s`` more seconds
    (0: it stops now). (The new secret, when the previous one expires, or None if there
    was none.) Secrets expired over a day ago are deleted."""
    now = utcnow()
    # The endpoint row first: concurrent rotations of one endpoint run one after another,
    # so exactly one secret stays current.
    session.execute(update(WEBHOOK_ENDPOINTS).where(_E.id == endpoint_id).values(updated_at=now))
    expires_at = now + timedelta(seconds=grace_s)
    expired = session.execute(
        update(WEBHOOK_SECRETS)
        .where(_S.endpoint_id == endpoint_id, _S.expires_at.is_(None))
        .values(expires_at=expires_at)
    )
    secret = _add_secret(session, endpoint_id, now)
    session.execute(
        delete(WEBHOOK_SECRETS).where(
            _S.endpoint_id == endpoint_id, _S.expires_at < now - _EXPIRED_KEPT
        )
    )
    return secret, expires_at if expired.rowcount else None  # type: ignore[attr-defined]
