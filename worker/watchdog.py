"""Ends a job that runs past its deadline, whatever its thread is doing.

One daemon thread per worker process looks at the jobs this process runs. A job still
running ``grace_s`` after its deadline (VISIONQ_JOB_DEADLINE_S from its first start) is
ended ``failed`` with code ``deadline_exceeded`` under its lease token (so a result its
thread stores later is discarded), its lease is no longer renewed, and its thread gets a
JobDeadlineExceeded exception so the task returns and the pool's slot is free again.

A Python thread cannot be killed; CPython can only raise an exception in it
(``PyThreadState_SetAsyncExc``), which the thread sees at its next Python bytecode. Code
blocked inside one C call (a socket read without timeout, ``time.sleep``, a regex in
``re``) is interrupted only when that call returns; the job has ended and its lease is
gone by then, so nothing it does afterwards is recorded.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.metrics import count_ended
from visionq.models.outcomes import fail_job
from visionq.models.tables import Attempt, AttemptOutcome, utcnow
from visionq.worker.leasekeeper import LeaseKeeper

log = logging.getLogger(__name__)

# How long after its deadline a job is stopped: the pipeline's own checks (retry delays,
# the rate limiter, call timeouts all stop at the deadline) get to end it first.
DEFAULT_GRACE_S = 10.0


class JobDeadlineExceeded(BaseException):
    """Raised in a job's thread by the watchdog. A BaseException: the pipeline's ``except
    Exception`` handlers must not turn it into a result."""


@dataclass
class _Watched:
    job_id: str
    lease_token: str
    deadline: float  # time.monotonic()
    thread_id: int


class Watchdog:
    """The jobs this process runs, with their deadlines, and the thread that stops them."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        leases: LeaseKeeper,
        *,
        deadline_s: float,
        grace_s: float = DEFAULT_GRACE_S,
    ) -> None:
        self._sessions = sessions
        self._leases = leases
        self._deadline_s = deadline_s
        self._grace_s = grace_s
        self._watched: dict[int, _Watched] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stopped = 0  # jobs ended by the watchdog (for logs and tests)

    @contextlib.contextmanager
    def watching(self, job_id: str, lease_token: str, deadline: float) -> Iterator[None]:
        """Run the block as job ``job_id``'s run, to end by ``deadline`` (monotonic).

        Raises JobDeadlineExceeded when the watchdog stopped the job, also when its
        exception was still on its way as the block ended.
        """
        thread_id = threading.get_ident()
        with self._lock:
            self._watched[thread_id] = _Watched(job_id, lease_token, deadline, thread_id)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="visionq-watchdog", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                stopped = self._watched.pop(thread_id, None) is None
            if stopped:
                _take_pending()
                raise JobDeadlineExceeded(job_id)

    def _run(self) -> None:
        tick = min(1.0, max(0.05, self._grace_s / 4))
        while not self._stop.wait(tick):
            self.check()

    def check(self) -> None:
        """Stop every watched job past its deadline plus the grace (one pass)."""
        now = time.monotonic()
        with self._lock:
            late = [w for w in self._watched.values() if now > w.deadline + self._grace_s]
        for watched in late:
            self._end(watched)

    def _end(self, watched: _Watched) -> None:
        self._leases.release(watched.lease_token)
        message = (
            f"The job ran past its deadline (VISIONQ_JOB_DEADLINE_S = {self._deadline_s:g} s "
            "from its start) and was stopped. Submit it again; if it keeps happening, ask "
            "for less per job (fewer images, a simpler schema) or raise VISIONQ_JOB_DEADLINE_S."
        )
        try:
            with self._sessions.begin() as session:
                ended = fail_job(
                    session,
                    watched.job_id,
                    code="deadline_exceeded",
                    message=message,
                    lease_token=watched.lease_token,
                )
                if ended:
                    _close_attempts(session, watched.job_id)
        except SQLAlchemyError as exc:
            # The lease is no longer renewed: it lapses and the sweeper takes the job back,
            # whose next run fails it at once (its deadline is past).
            log.warning("job %s past its deadline; could not fail it: %s", watched.job_id, exc)
            ended = None
        if ended:
            count_ended([ended])
        with self._lock:
            # Only a thread still running this job gets the exception: it may have ended it
            # itself meanwhile, and moved on to another job.
            if self._watched.get(watched.thread_id) is not watched:
                return
            del self._watched[watched.thread_id]
            _raise_in(watched.thread_id)
        self.stopped += 1
        log.error(
            "job %s ran past its deadline; %s, its thread interrupted",
            watched.job_id,
            "failed deadline_exceeded" if ended else "already ended",
        )

    def close(self) -> None:
        """Stop the watchdog's thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _close_attempts(session: Session, job_id: str) -> None:
    """The attempt the stopped thread had open ends failed (its call's usage is unknown)."""
    session.execute(
        update(Attempt)
        .where(Attempt.job_id == job_id, Attempt.outcome == AttemptOutcome.RUNNING)
        .values(
            outcome=AttemptOutcome.FAILED,
            finished_at=utcnow(),
            error_class="JobDeadlineExceeded",
            error_message="The watchdog stopped the job at its deadline during this attempt.",
        )
    )


def _raise_in(thread_id: int) -> None:
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(JobDeadlineExceeded)
    )
    if done > 1:  # never expected: undo rather than hit other threads
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


def _noop() -> None:
    return None


def _take_pending() -> None:
    """Let an exception set by ``_raise_in`` but not yet seen by this thread arrive here,
    not in whatever the thread runs next (CPython checks for it at function calls)."""
    with contextlib.suppress(JobDeadlineExceeded):
        for _ in range(100):
            _noop()
