"""The Celery app: the one process-global object visionq allows.

Its configuration is a promise (``add_defaults`` with a callable): settings are read when
Celery first needs them, in the process that runs, never at import time.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from visionq.models.broker import DELIVER_WEBHOOK, JOBS_QUEUE, WEBHOOKS_QUEUE, transport_options
from visionq.models.settings import Settings, get_settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for visionq's at-least-once execution of jobs."""
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        # Results live in the SQL database; Celery's result backend would be a second copy.
        "task_ignore_result": True,
        "task_default_queue": JOBS_QUEUE,
        # Webhook deliveries have their own queue: `visionq worker --queues` chooses which
        # a worker takes (both by default, sharing its slots).
        "task_routes": {DELIVER_WEBHOOK: {"queue": WEBHOOKS_QUEUE}},
        # A message is acknowledged only after the task ran, and given back to the queue
        # if the worker process dies: no accepted job is lost with a crashed worker.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # Long calls: a worker takes one message per free slot, leaving the rest to others.
        "worker_prefetch_multiplier": 1,
        # On a lost broker connection, running tasks are cancelled and their messages
        # (unacknowledged) come back; their leases lapse and another claim takes over.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_hijack_root_logger": False,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_transport_options": {"visibility_timeout": settings.broker_visibility_timeout_s},
    } | transport_options(settings.redis_url)


app = Celery(
    "visionq",
    set_as_current=False,
    include=["visionq.worker.tasks", "visionq.worker.webhook_tasks"],
)
app.add_defaults(lambda: celery_config(get_settings()))
