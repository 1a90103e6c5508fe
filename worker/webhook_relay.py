"""The webhook relay: the database is the scheduler, Celery only carries "send this now".

Every tick (``VISIONQ_WEBHOOK_POLL_S``), in a thread of each worker's main process:
1. fan out new outbox events to one delivery per listening endpoint (and callback URL);
2. every few seconds, end user batches whose jobs all ended (``batch.completed`` events);
3. give back ``sending`` deliveries whose claim expired (a sender died mid-send);
4. claim due deliveries (at most ``VISIONQ_WEBHOOK_MAX_IN_FLIGHT`` per endpoint, one while it
   is failing) and send one message per claim to the ``visionq.webhooks`` queue.
Several workers relay at once: each step is a conditional UPDATE or an insert guarded by a
unique key, so doing it twice is harmless; a claim is won by one relay only. A message lost
after its claim (Redis down, worker killed) leaves the claim to expire and be reclaimed: at
least once, never silently dropped.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from visionq.models import metrics
from visionq.models.batch_completion import complete_ended_batches
from visionq.models.settings import Settings
from visionq.models.table_base import utcnow
from visionq.models.tables import BATCHES
from visionq.models.webhook_deliveries import (
    claim_delivery,
    due_deliveries,
    fan_out,
    reclaim_expired,
)

log = logging.getLogger(__name__)

FAN_OUT_PAGE = 500
DISPATCH_PAGE = 200
BATCH_SCAN_S = 5.0
# A claim outlives the attempt's own deadline by this much before another sender may take it.
CLAIM_MARGIN_S = 30.0


class WebhookRelay:
    """One relay: ``run_once`` is a tick, ``run`` ticks until stopped.

    ``send(delivery_id, claim)`` sends the delivery's message (worker/webhook_tasks.py's
    send_delivery; tests pass a fake).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        send: Callable[[int, str], None],
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._send = send
        self._settings = settings
        self._clock = clock
        self._next_batch_scan = 0.0

    def run_once(self) -> dict[str, int]:
        """One tick; what it did: events fanned out (and those that could not be), batches
        ended, claims reclaimed, deliveries dispatched."""
        done = {"fanned_out": 0, "unfannable": 0, "batches_ended": 0, "reclaimed": 0,
                "dispatched": 0}  # fmt: skip
        with self._sessions.begin() as session:
            now = self._clock()
            fanned = fan_out(session, now=now, limit=FAN_OUT_PAGE)
        done["fanned_out"] = sum(fanned.by_type.values())
        # Stamped without deliveries (logged by fan_out): they hold up no other event.
        done["unfannable"] = len(fanned.unfannable)
        for event_type, count in fanned.by_type.items():
            metrics.WEBHOOK_EVENTS.labels(event_type).inc(count)
        if time.monotonic() >= self._next_batch_scan:
            self._next_batch_scan = time.monotonic() + BATCH_SCAN_S
            with self._sessions.begin() as session:
                ended = complete_ended_batches(session, now=self._clock())
                states = _states(session, ended)
            for state in states:
                metrics.BATCHES_ENDED.labels(state).inc()
            done["batches_ended"] = len(ended)
        with self._sessions.begin() as session:
            done["reclaimed"] = reclaim_expired(session, now=self._clock())
        done["dispatched"] = self._dispatch()
        return done

    def _dispatch(self) -> int:
        now = self._clock()
        with self._sessions() as session:
            due = due_deliveries(
                session, now=now, max_in_flight=self._settings.webhook_max_in_flight,
                limit=DISPATCH_PAGE,
            )  # fmt: skip
        expires = now + timedelta(seconds=self._settings.webhook_timeout_s + CLAIM_MARGIN_S)
        sent = 0
        for delivery_id in due:
            token = secrets.token_hex(16)
            # Committed before the message goes: the sender must find the claim.
            with self._sessions.begin() as session:
                won = claim_delivery(session, delivery_id, token=token, expires_at=expires)
            if not won:
                continue  # another relay claimed it first
            try:
                self._send(delivery_id, token)
            except Exception as exc:
                # The claim expires and the delivery is reclaimed: sent later, not lost.
                log.warning(
                    "webhook delivery %d not sent now (%s); retried later", delivery_id, exc
                )
                continue
            sent += 1
        return sent

    def run(self, stop: threading.Event) -> None:
        """Tick every ``VISIONQ_WEBHOOK_POLL_S`` until ``stop`` is set; a failing tick (the
        database restarting...) is logged and the next one tries again."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("webhook relay tick failed; trying again")
            stop.wait(self._settings.webhook_poll_s)


def _states(session: Session, batch_ids: list[str]) -> list[str]:
    """The states of the batches just ended (closed or cancelled), for the metric's label."""
    if not batch_ids:
        return []
    return list(session.scalars(select(BATCHES.c.state).where(BATCHES.c.id.in_(batch_ids))))
