"""A worker's resources, opened when its process starts and closed when it stops.

Celery's signals drive it (worker/tasks.py): ``worker_init`` in the main process (it runs
the jobs with the threads pool), ``worker_process_init`` in each prefork or solo pool
process, ``worker_process_shutdown`` / ``worker_shutdown`` at the end. What a process
opens: the job context (database engine, blob store, Gemini SDK client, the rate
limiter's Redis, lease renewals) and the job watchdog; the main process also runs the
sweeper, the Gemini Batch lane and the webhook relay (each on its own engine). Tests pass
factories that build fakes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis
from sqlalchemy import Engine

from visionq.models.blobs import BlobStore
from visionq.models.db import make_engine, make_session_factory
from visionq.models.leases import DueJob
from visionq.models.settings import Settings
from visionq.worker.batch_api import GeminiBatches
from visionq.worker.batch_lane import BatchLane
from visionq.worker.context import WorkerContext
from visionq.worker.gemini import make_client
from visionq.worker.sweeper import Sweeper
from visionq.worker.watchdog import Watchdog
from visionq.worker.webhook_relay import WebhookRelay

log = logging.getLogger(__name__)


class Closeable(Protocol):
    """A running service that ``close()`` stops (the sweeper, or a test's fake)."""

    def close(self) -> None: ...


@dataclass
class WorkerResources:
    """What a job needs from its process: the context and the process's watchdog."""

    context: WorkerContext
    watchdog: Watchdog

    def close(self) -> None:
        """Stop the watchdog's thread, then release the context's connections."""
        self.watchdog.close()
        self.context.close()


class SweeperThread:
    """The sweeper (worker/sweeper.py) in a daemon thread, with its own engine and Redis."""

    def __init__(
        self,
        settings: Settings,
        send: Callable[[DueJob], bool | None],
        top_up: Callable[[int], int] | None = None,
    ) -> None:
        self._engine: Engine = make_engine(settings.database_url, pool_size=2)
        self._redis = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
        sweeper = Sweeper(
            sessions=make_session_factory(self._engine), send=send, redis_client=self._redis,
            settings=settings, blobs=BlobStore.from_settings(settings), top_up=top_up,
        )  # fmt: skip
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=sweeper.run, args=(self._stop,), name="visionq-sweeper", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop sweeping (a sweep under way finishes first), then close the connections."""
        self._stop.set()
        self._thread.join(timeout=30)
        self._redis.close()
        self._engine.dispose()


class BatchLaneThread:
    """The Gemini Batch lane (worker/batch_lane.py) in a daemon thread, on resources of
    its own: a job context (engine, blob store, upload cache), an SDK client and Redis."""

    def __init__(self, settings: Settings) -> None:
        self._context = WorkerContext.build(settings)
        self._redis = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
        self._batches = GeminiBatches(make_client(settings), secret=settings.gemini_key())
        lane = BatchLane(self._context, self._redis, self._batches, settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lane.run, args=(self._stop,), name="visionq-batch-lane", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the lane (a tick under way finishes first), then close its connections."""
        self._stop.set()
        self._thread.join(timeout=60)
        self._batches.close()
        self._redis.close()
        self._context.close()


class WebhookRelayThread:
    """The webhook relay (worker/webhook_relay.py) in a daemon thread, on an engine of its
    own; ``send(delivery_id, claim)`` sends a delivery's message."""

    def __init__(self, settings: Settings, send: Callable[[int, str], None]) -> None:
        self._engine: Engine = make_engine(settings.database_url, pool_size=2)
        relay = WebhookRelay(make_session_factory(self._engine), send, settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=relay.run, args=(self._stop,), name="visionq-webhook-relay", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop relaying (a tick under way finishes first), then close the connections."""
        self._stop.set()
        self._thread.join(timeout=30)
        self._engine.dispose()


def open_resources(settings: Settings) -> WorkerResources:
    """A process's real resources (the default factory of WorkerLifecycle)."""
    context = WorkerContext.build(settings)
    watchdog = Watchdog(context.sessions, context.leases, deadline_s=settings.job_deadline_s)
    return WorkerResources(context, watchdog)


class WorkerLifecycle:
    """Opens a process's resources once, hands them to its jobs, closes them at shutdown.

    ``open_resources`` and ``open_sweeper`` build what ``open`` and ``start_sweeper``
    hold; anything with a ``close()`` serves as a sweeper, so tests pass fakes.
    """

    def __init__(
        self,
        open_resources: Callable[[Settings], WorkerResources] = open_resources,
        open_sweeper: Callable[[Settings], Closeable] | None = None,
        open_batch_lane: Callable[[Settings], Closeable] | None = None,
    ) -> None:
        self._open_resources = open_resources
        self._open_sweeper = open_sweeper
        self._open_batch_lane = open_batch_lane
        self._resources: WorkerResources | None = None
        self._sweeper: Closeable | None = None
        self._batch_lane: Closeable | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def resources(self) -> WorkerResources:
        """This process's resources; raises when they were not opened in it."""
        resources = self._resources
        if resources is None or self._pid != os.getpid():
            raise RuntimeError(
                "the worker's resources are not open in this process: run jobs in a "
                "`visionq worker` (its start signals open them), or call open() first"
            )
        return resources

    def open(self, settings: Settings) -> WorkerResources:
        """Open this process's resources; a second call in the same process keeps them.

        A process forked after its parent opened them opens its own: connections are
        not shared across a fork (the inherited ones are left to the parent).
        """
        with self._lock:
            if self._resources is None or self._pid != os.getpid():
                self._resources = self._open_resources(settings)
                self._pid = os.getpid()
                log.debug("worker resources opened in process %d", self._pid)
            return self._resources

    def start_sweeper(self, settings: Settings) -> None:
        """Run the sweeper in this process (once), when the lifecycle has a factory for it."""
        with self._lock:
            if self._open_sweeper is not None and self._sweeper is None:
                self._sweeper = self._open_sweeper(settings)

    def stop_sweeper(self) -> None:
        """Stop the sweeper and close its connections (nothing when none runs)."""
        with self._lock:
            sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.close()

    def start_batch_lane(self, settings: Settings) -> None:
        """Run the Gemini Batch lane in this process (once), when there is a factory for it."""
        with self._lock:
            if self._open_batch_lane is not None and self._batch_lane is None:
                self._batch_lane = self._open_batch_lane(settings)

    def stop_batch_lane(self) -> None:
        """Stop the batch lane and close its connections (nothing when none runs)."""
        with self._lock:
            lane, self._batch_lane = self._batch_lane, None
        if lane is not None:
            lane.close()

    def close(self) -> None:
        """Stop the sweeper and the batch lane, then close this process's resources; safe
        to call twice."""
        self.stop_sweeper()
        self.stop_batch_lane()
        self.close_resources()

    def close_resources(self) -> None:
        """Close the job resources this process opened (not those a fork inherited)."""
        with self._lock:
            resources, self._resources = self._resources, None
            mine = self._pid == os.getpid()
        if resources is not None and mine:
            resources.close()
            log.debug("worker resources closed in process %d", os.getpid())
