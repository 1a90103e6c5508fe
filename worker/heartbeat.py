"""The worker's heartbeat: a thread of its main process records it in Redis every third of
VISIONQ_WORKER_HEARTBEAT_S (models/heartbeats.py), so /readyz can tell that a worker runs.

The first beat is written before Celery logs the worker ready; a worker stopping cleanly
removes its entry, one killed ages out of the window.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import redis

from visionq.models.heartbeats import beat, forget
from visionq.models.settings import Settings

log = logging.getLogger(__name__)


class Heartbeat:
    """Beats for one worker process until stopped."""

    def __init__(self, client: redis.Redis, settings: Settings, name: str | None = None) -> None:
        self._client = client
        self._interval_s = settings.worker_heartbeat_s / 3
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visionq-heartbeat", daemon=True)

    def start(self) -> None:
        """Beat once now, then in the background."""
        self._beat()
        self._thread.start()

    def _beat(self) -> None:
        try:
            beat(self._client, self.name)
        except redis.RedisError as exc:
            # Redis down: the worker cannot take jobs either; /readyz says so via redis.
            log.warning("worker heartbeat not recorded: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._beat()

    def stop(self) -> None:
        """Stop beating and remove this worker's entry."""
        self._stop.set()
        try:
            forget(self._client, self.name)
        except redis.RedisError as exc:
            log.warning("worker heartbeat not removed (it ages out): %s", exc)
