"""One webhook delivery attempt recorded (issue 21): the delivery's states and the
sender's view of a claimed delivery, and record_attempt, which moves the delivery and
its endpoint on in the sender's transaction, fenced by its claim. Re-exported by
models/webhook_deliveries.py.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, insert, or_, update
from sqlalchemy.orm import Session

from visionq.models.tables import (
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS,
    EndpointKind,
)
from visionq.models.webhook_endpoints import EndpointRow, skip_pending
from visionq.models.webhook_tables import DisabledBy

_D = WEBHOOK_DELIVERIES.c
_E = WEBHOOK_ENDPOINTS.c


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class DeliveryJob:
    """A claimed delivery with what sending it needs."""

    delivery_id: int
    event_id: str
    event_type: str
    tenant: str
    subject_id: str
    url: str
    endpoint: EndpointRow
    payload: dict[str, Any] | None
    occurred_at: datetime
    attempts: int
    window_started_at: datetime
    # > 0: the delivery was replayed (its attempts are marked replay in the log).
    replays: int = 0
    # When it was due (its next_attempt_at when claimed): None when not known.
    due_at: datetime | None = None


@dataclass(frozen=True)
class AttemptResult:
    """One try: outcome succeeded | gone | http_error | timeout | network_error | refused
    | internal_error (nothing sent: visionq failed to prepare it); the receiver's status,
    the time taken, what went wrong, its Retry-After."""

    outcome: str
    status_code: int | None
    latency_ms: int
    error: str | None
    retry_after_s: float | None = None


def _describe(result: AttemptResult) -> str:
    """The attempt's failure in a few words (the endpoint's last_error, a disable reason)."""
    if result.status_code is not None:
        return f"HTTP {result.status_code}"
    return f"{result.outcome.replace('_', ' ')}: {result.error}" if result.error else result.outcome


# An endpoint is "failing" (one probe at a time, the recovery flush when it answers again)
# once this many attempts in a row failed with no success between: one delivery the
# receiver refuses for its own reasons, among others that succeed, never makes it failing.
FAILING_AFTER = 2


def delivery_level(status_code: int | None) -> bool:
    """True when a failure says something about this delivery, not about the receiver: a
    4xx other than 408 (timeout) and 429 (slow down), e.g. 400/413/422 for one payload.
    Timeouts, network errors, SSRF refusals, 3xx and 5xx are the endpoint's."""
    return status_code is not None and 400 <= status_code < 500 and status_code not in (408, 429)


def record_attempt(
    session: Session,
    job: DeliveryJob,
    claim: str,
    result: AttemptResult,
    *,
    next_attempt_at: datetime | None,
    now: datetime,
    disable_after_s: float,
    disable_min_failures: int,
    started_at: datetime | None = None,
) -> DeliveryState | None:
    """Record one attempt under ``claim`` (None, nothing written: the claim is no longer
    the sender's) and move the delivery and its endpoint on; the delivery's new state.

    2xx: succeeded, the endpoint healthy again (a failing one has the pending deliveries
    that waited on it made due now: the backlog drains at once). 410: the endpoint disabled
    (a callbacks endpoint: this delivery failed). ``internal_error`` (visionq could not
    prepare the request): retried at ``next_attempt_at``, the endpoint's health untouched.
    Else: retried at ``next_attempt_at`` (None: failed, past the window); the endpoint
    failing once FAILING_AFTER attempts in a row failed, and disabled once it has failed
    for ``disable_after_s`` with at least ``disable_min_failures`` attempts in a row."""
    is_endpoint = job.endpoint.kind == EndpointKind.ENDPOINT
    if result.outcome == "succeeded":
        state = DeliveryState.SUCCEEDED
    elif result.outcome == "gone" or next_attempt_at is None:
        state = DeliveryState.FAILED
    else:
        state = DeliveryState.PENDING
    values: dict[str, Any] = {
        "state": state.value, "attempts": _D.attempts + 1, "claim": None,
        "claim_expires_at": None, "last_status": result.status_code, "updated_at": now,
        "last_error": None if state == DeliveryState.SUCCEEDED else _describe(result),
    }  # fmt: skip
    if state == DeliveryState.SUCCEEDED:
        values["succeeded_at"] = now
    if state == DeliveryState.PENDING:
        values["next_attempt_at"] = next_attempt_at
    fenced = session.execute(
        update(WEBHOOK_DELIVERIES)
        .where(_D.id == job.delivery_id, _D.state == DeliveryState.SENDING.value, _D.claim == claim)
        .values(**values)
    )
    if not fenced.rowcount:  # type: ignore[attr-defined]
        return None
    session.execute(
        insert(WEBHOOK_ATTEMPTS).values(
            delivery_id=job.delivery_id, endpoint_id=job.endpoint.id, event_id=job.event_id,
            attempt=job.attempts + 1, replay=job.replays > 0,
            started_at=started_at or now - timedelta(milliseconds=result.latency_ms),
            latency_ms=result.latency_ms, outcome=result.outcome,
            status_code=result.status_code,
            error=result.error[:500] if result.error else None,
        )
    )  # fmt: skip
    endpoint_id = job.endpoint.id
    if result.outcome == "internal_error":
        return state
    if state == DeliveryState.SUCCEEDED:
        _healthy(session, endpoint_id, now)
        return state
    if result.outcome == "gone":
        if is_endpoint:
            reason = (
                f"the receiver answered 410 Gone at {now:%Y-%m-%d %H:%M:%S} UTC: it asked to "
                f"stop; re-enable with `visionq webhooks update {endpoint_id} --enable`"
            )
            _disable(session, endpoint_id, reason, now)
        _failed(session, endpoint_id, _describe(result), now, failing=False)
        return state
    failing_since, failures = _failed(
        session, endpoint_id, _describe(result), now, failing=is_endpoint
    )
    if (
        is_endpoint
        and failing_since is not None
        and failing_since <= now - timedelta(seconds=disable_after_s)
        and failures >= disable_min_failures
    ):
        reason = (
            f"every delivery since {failing_since:%Y-%m-%d %H:%M:%S} UTC failed ({failures} "
            f"attempts; last: {_describe(result)}); fix the receiver, then re-enable with "
            f"`visionq webhooks update {endpoint_id} --enable` and replay the failed ones"
        )
        if _disable(session, endpoint_id, reason, now) and state == DeliveryState.PENDING:
            return DeliveryState.SKIPPED
    return state


def _healthy(session: Session, endpoint_id: str, now: datetime) -> None:
    session.execute(
        update(WEBHOOK_ENDPOINTS)
        .where(_E.id == endpoint_id)
        .values(consecutive_failures=0, last_success_at=now)
    )
    recovered = session.execute(
        update(WEBHOOK_ENDPOINTS)
        .where(_E.id == endpoint_id, _E.failing_since.is_not(None))
        .values(failing_since=None)
    )
    if recovered.rowcount:  # type: ignore[attr-defined]
        # The recovery flush: the backlog is sent now (max_in_flight at a time), not each
        # at its own next step hours away. Only what failed because the receiver was down
        # (no answer, 5xx, 408, 429): a delivery the receiver refused for itself (400,
        # 413, 422...) keeps its own schedule.
        session.execute(
            update(WEBHOOK_DELIVERIES)
            .where(
                _D.endpoint_id == endpoint_id,
                _D.state == DeliveryState.PENDING.value,
                _D.next_attempt_at > now,
                or_(
                    _D.last_status.is_(None),
                    ~_D.last_status.between(400, 499),
                    _D.last_status.in_((408, 429)),
                ),
            )
            .values(next_attempt_at=now)
        )


def _failed(
    session: Session, endpoint_id: str, error: str, now: datetime, *, failing: bool
) -> tuple[datetime | None, int]:
    """Count a failed attempt on the endpoint; (failing since, failures in a row)."""
    values: dict[str, Any] = {"last_failure_at": now, "last_error": error}
    if failing:
        values["failing_since"] = case(
            (_E.consecutive_failures + 1 >= FAILING_AFTER, func.coalesce(_E.failing_since, now)),
            else_=_E.failing_since,
        )
        values["consecutive_failures"] = _E.consecutive_failures + 1
    row = session.execute(
        update(WEBHOOK_ENDPOINTS)
        .where(_E.id == endpoint_id)
        .values(**values)
        .returning(_E.failing_since, _E.consecutive_failures)
    ).first()
    return (None, 0) if row is None else (row.failing_since, int(row.consecutive_failures))


def _disable(session: Session, endpoint_id: str, reason: str, now: datetime) -> bool:
    """Disable an enabled endpoint with ``reason`` and skip its pending deliveries; False
    when it was disabled already (the first reason stays)."""
    disabled = session.execute(
        update(WEBHOOK_ENDPOINTS)
        .where(_E.id == endpoint_id, _E.enabled.is_(True))
        .values(
            enabled=False,
            disabled_at=now,
            disabled_reason=reason,
            disabled_by=DisabledBy.VISIONQ,
            updated_at=now,
        )
    )
    if not disabled.rowcount:  # type: ignore[attr-defined]
        return False
    skip_pending(session, endpoint_id, now)
    return True
