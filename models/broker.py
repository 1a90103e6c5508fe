"""kombu's Redis transport, reusing one Redis client per channel, and surviving a restart.

Used by both ends of the queue: the API's producer (api/queue.py) and the worker's Celery
app (worker/celery_app.py), both through ``transport_options``.

kombu 5.7's ``Channel.conn_or_acquire`` builds a new ``redis.Redis`` object for every
command it sends outside a pipeline: each acknowledgement, each restore, each publish.
With redis-py 8 that constructor copies ~200 response callbacks into a case-insensitive
dict; profiled in the worker it was about a tenth of the process's on-CPU samples.
A ``redis.Redis`` object is thread-safe (each command checks a connection out of the
pool), so one per channel and pool does the same work. In the API it was about a fifth
of the CPU of sending a job's message.

On a Redis restart, Celery 5.7 collects the broker connection (which detaches the
transport) and then closes it, which restores the unacknowledged messages through a new
pool built from the detached connection: an AttributeError that ends the worker
("Unrecoverable error: 'NoneType' object has no attribute 'hostname'"). Raising the
connection error Redis being down would raise keeps it a connection error, which Celery
handles by reconnecting; the unacknowledged messages stay in Redis and come back after
the visibility timeout (and our sweeper re-sends their jobs sooner).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
from kombu.transport import redis as kombu_redis

# The tasks and queues of visionq's messages: the API sends by these names (it does not
# import the worker), and the worker registers and consumes them. Webhook deliveries have a
# queue of their own, which separates the messages, not the capacity: a worker consuming
# both shares its slots between them (`visionq worker --queues` picks one, so a small
# worker can serve webhooks while jobs hold every slot of the others).
PROCESS_JOB = "visionq.process_job"
# A token: "run the next job fair share picks" (worker/tasks.py::run_next, models/fairqueue.py).
RUN_NEXT = "visionq.run_next"
# Kombu's Redis transport serves priority 0 of a queue before 9 (tests/unit/
# test_kombu_priority.py): a popped job's PROCESS_JOB (JOB_PRIORITY) overtakes the backlog of
# tokens (TOKEN_PRIORITY), decision 16 of issue 23. One contract for the API and the worker.
TOKEN_PRIORITY = 9
JOB_PRIORITY = 0
JOBS_QUEUE = "visionq.jobs"
DELIVER_WEBHOOK = "visionq.deliver_webhook"
WEBHOOKS_QUEUE = "visionq.webhooks"


class Channel(kombu_redis.Channel):
    _sync_client: Any = None

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("the broker connection is closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        client = self._sync_client
        # A new pool (kombu replaces it after a connection error) gets a new client.
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


def transport_options(redis_url: str) -> dict[str, Any]:
    """Celery settings selecting this transport, for redis:// URLs.

    Not for rediss://: kombu turns TLS on by that URL scheme's transport name, which an
    explicit transport class would replace.
    """
    if urlsplit(redis_url).scheme != "redis":
        return {}
    return {"broker_transport": f"{__name__}:Transport"}
