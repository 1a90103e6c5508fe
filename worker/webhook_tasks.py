"""The webhook delivery task and the relay's life in a worker.

``deliver_webhook`` runs one claimed attempt (worker/webhook_send.py) on the ``visionq.webhooks``
queue; it never retries through Celery (the database schedules retries: a 10 h countdown
would outlive the broker's visibility timeout). It runs in the worker's pool, in the slots
jobs use unless the worker consumes visionq.webhooks only (`visionq worker --queues`); a
message that waits for a slot keeps its delivery (the claim is extended when it starts).
The relay thread (worker/webhook_relay.py) starts with the worker's main process
(``VISIONQ_WEBHOOKS_ENABLED``) and stops when the worker is asked to stop.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import signals

from visionq.models.broker import DELIVER_WEBHOOK, WEBHOOKS_QUEUE
from visionq.models.settings import get_settings
from visionq.worker.celery_app import app
from visionq.worker.lifecycle import WebhookRelayThread
from visionq.worker.tasks import WORKER
from visionq.worker.webhook_send import deliver

log = logging.getLogger(__name__)


@app.task(name=DELIVER_WEBHOOK, acks_late=True)  # type: ignore[untyped-decorator]
def deliver_webhook(delivery_id: int, claim: str) -> str:
    """Send delivery ``delivery_id`` once if ``claim`` still holds it; its new state."""
    return deliver(WORKER.resources.context.sessions, get_settings(), delivery_id, claim)


def send_delivery(delivery_id: int, claim: str) -> None:
    """Send a claimed delivery's message to the webhooks queue (the relay's ``send``)."""
    app.send_task(DELIVER_WEBHOOK, args=[delivery_id, claim], queue=WEBHOOKS_QUEUE)


class _Relay:
    """The relay thread of this process (at most one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: WebhookRelayThread | None = None

    def start(self) -> None:
        settings = get_settings()
        with self._lock:
            if settings.webhooks_enabled and self._thread is None:
                self._thread = WebhookRelayThread(settings, send_delivery)

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.close()


RELAY = _Relay()


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _start_relay(sender: Any = None, **_: Any) -> None:
    """Every worker relays webhooks from a thread of its main process (worker/webhook_relay.py)."""
    RELAY.start()


@signals.worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _stop_relay(**_: Any) -> None:
    """No new dispatch once the worker is asked to stop (attempts under way finish)."""
    RELAY.stop()
