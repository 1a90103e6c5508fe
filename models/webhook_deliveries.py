"""Webhook deliveries: one per (event, endpoint), the retry state machine the relay and the
delivery task move along (issue 21, the database schedules retries; Celery only carries
"send now").

    pending --claim--> sending --2xx--> succeeded
       ^                  |--failure--> pending (next_attempt_at) | failed (past the window)
       |                  '--410------> failed (endpoint disabled)
       '--reclaim (claim expired, an attempt "lost") / replay (failed, skipped, succeeded)
    skipped: the endpoint is disabled (a replay after enabling it sends them)

Every step is a conditional UPDATE (or an insert behind a conditional UPDATE), so several
relays and senders can run at once: each delivery is claimed by one, and an attempt is
recorded only under the claim that sent it (models/webhook_record.py). The delivery log,
its pages and replays are in models/webhook_log.py, the fan-out in models/webhook_fanout.py,
what is due and the claims in models/webhook_claims.py. All are re-exported here.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from visionq.models.batchjobs import chunks
from visionq.models.tables import WEBHOOK_DELIVERIES, WEBHOOK_EVENTS
from visionq.models.webhook_claims import (
    Lost,
    claim_delivery,
    due_deliveries,
    load_claimed,
    reclaim_expired,
    release_claim,
    start_claimed,
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
    "Lost",
    "attempts_page",
    "claim_delivery",
    "deliveries_page",
    "due_deliveries",
    "fan_out",
    "freeze_payload",
    "load_claimed",
    "reclaim_expired",
    "record_attempt",
    "release_claim",
    "replay",
    "start_claimed",
]

_D = WEBHOOK_DELIVERIES.c
_V = WEBHOOK_EVENTS.c


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
