"""Keeps the leases of the jobs a worker process runs alive while they run.

One thread per process renews every held lease in one UPDATE every third of the lease, so a
job that waits (for the rate limiter, a retry delay or a slow call) keeps its lease, and a
job whose worker died loses it within ``lease_s``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.leases import renew_leases

log = logging.getLogger(__name__)


class LeaseKeeper:
    """The set of lease tokens this process holds, renewed by a daemon thread."""

    def __init__(self, sessions: sessionmaker[Session], *, lease_s: float) -> None:
        self._sessions = sessions
        self._lease_s = lease_s
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def held(self, token: str) -> Iterator[None]:
        """Renew ``token``'s lease for as long as the block runs."""
        with self._lock:
            self._tokens.add(token)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="visionq-leases", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._tokens.discard(token)

    def release(self, token: str) -> None:
        """Stop renewing ``token``'s lease now (the watchdog ended its job): a thread still
        inside ``held`` can no longer keep the job."""
        with self._lock:
            self._tokens.discard(token)

    def _run(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            with self._lock:
                tokens = list(self._tokens)
            if not tokens:
                continue
            try:
                with self._sessions.begin() as session:
                    renew_leases(session, tokens, lease_s=self._lease_s)
            except SQLAlchemyError as exc:
                # The database may be restarting: try again next tick. A lease that lapses
                # meanwhile lets another worker take the job; ours is then fenced off.
                log.warning("could not renew %d job lease(s): %s", len(tokens), exc)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
