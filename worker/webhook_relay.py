"""The webhook relay: the database is the scheduler, Celery only carries "send this now".

Every tick (``VISIONQ_WEBHOOK_POLL_S``), in a thread of each worker's main process:
1. fan out new outbox events to one delivery per listening endpoint (and callback URL);
2. every few seconds, end user batches whose jobs all ended (``batch.completed`` events);
3. give back ``sending`` deliveries whose claim expired with no attempt recorded (a sender
   died mid-send, a message lost or not taken in time): an attempt ``lost`` each, counted
   toward the retry window like any other;
4. claim due deliveries (at most ``VISIONQ_WEBHOOK_MAX_IN_FLIGHT`` per receiver, one while it
   is failing) and send one message per claim to the ``visionq.webhooks`` queue.
Several workers relay at once: each step is a conditional UPDATE or an insert guarded by a
unique key, so doing it twice is harmless; a claim is won by one relay only. A message lost
after its claim (Redis down, worker killed) leaves the claim to expire and be reclaimed: at
least once, never silently dropped. The claim lasts DISPATCH_CLAIM_S until the sender starts
(a message may wait for a free worker slot), then the attempt's deadline and a margin.
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
    release_claim,
)

log = logging.getLogger(__name__)

FAN_OUT_PAGE = 500
DISPATCH_PAGE = 200
BATCH_SCAN_S = 5.0
# A started sender's claim outlives the attempt's own deadline by this much before another
# sender may take it.
CLAIM_MARGIN_S = 30.0
# A dispatched message has this long to be taken by a worker before its delivery is
# reclaimed (an attempt "lost") and sent again by a new message.
DISPATCH_CLAIM_S = 300.0


def dispatch_claim_s(settings: Settings) -> float:
    """How long a dispatched delivery's claim lasts until its sender starts (never shorter
    than a started sender's)."""
    return max(DISPATCH_CLAIM_S, started_claim_s(settings))


def started_claim_s(settings: Settings) -> float:
    """How long a started sender's claim lasts: its attempt's deadline and a margin."""
    return settings.webhook_timeout_s + CLAIM_MARGIN_S


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
        metrics.WEBHOOK_EVENTS_UNFANNABLE.inc(len(fanned.unfannable))
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
            lost = reclaim_expired(
                session, now=self._clock(), window_s=self._settings.webhook_retry_window_s
            )
        for delivery in lost:
            metrics.WEBHOOK_DELIVERIES.labels(delivery.tenant, delivery.event_type, "lost").inc()
        if lost:
            log.warning(
                "%d webhook deliveries were claimed but no attempt finished (%d past their "
                "window, now failed): is a worker consuming the visionq.webhooks queue, with "
                "free slots?", len(lost), sum(delivery.failed for delivery in lost),
            )  # fmt: skip
        done["reclaimed"] = len(lost)
        done["dispatched"] = self._dispatch()
        return done

    def _dispatch(self) -> int:
        now = self._clock()
        with self._sessions() as session:
            due = due_deliveries(
                session, now=now, max_in_flight=self._settings.webhook_max_in_flight,
                limit=DISPATCH_PAGE,
            )  # fmt: skip
        # Long enough for the message to wait in the queue behind busy slots; the sender
        # that starts cuts it to its own deadline (start_claimed).
        expires = now + timedelta(seconds=dispatch_claim_s(self._settings))
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
                # Given back at once: the next tick tries again (a message that went out
                # after all finds its claim gone and sends nothing).
                with self._sessions.begin() as session:
                    release_claim(session, delivery_id, token)
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
