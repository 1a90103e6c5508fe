"""kombu's Redis transport, reusing one Redis client per channel for its commands.

kombu 5.7's ``Channel.conn_or_acquire`` builds a new ``redis.Redis`` object for every
command it sends outside a pipeline: each acknowledgement, each restore, each publish.
With redis-py 8 that constructor copies ~200 response callbacks into a case-insensitive
dict; profiled in the worker it was a tenth of the process's CPU, more than the database.
A ``redis.Redis`` object is thread-safe (each command checks a connection out of the
pool), so one per channel and pool does the same work. Selected with Celery's
``broker_transport`` setting (see worker/celery_app.py).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _sync_client: Any = None

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
