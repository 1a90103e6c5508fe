"""Enqueueing jobs. FIFO (``VISIONQ_FAIR_SHARE=false``): a Celery message per job, holding
only the job id. Fair share: the job goes to its tenant's waiting set in Redis
(models/fairqueue.py) and an anonymous ``run_next`` token goes to Celery; the worker taking
the token starts whichever job fair share picks (worker/tasks.py::run_next)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import Celery

from visionq.models.broker import (
    JOBS_QUEUE,
    PROCESS_JOB,
    RUN_NEXT,
    TOKEN_PRIORITY,
    transport_options,
)
from visionq.models.fairqueue import FairQueue, QueuedJob

log = logging.getLogger(__name__)
_RETRY_POLICY = {"max_retries": 3, "interval_start": 0.1, "interval_step": 0.5}


class QueueUnavailableError(RuntimeError):
    """The broker (Redis) did not take the message."""


class JobQueue:
    """A Celery producer bound to the broker URL (no task code is imported), and the fair
    share sets when ``fair`` is given (None: FIFO)."""

    def __init__(self, broker_url: str, *, fair: FairQueue | None = None) -> None:
        self._app = Celery("visionq-api", broker=broker_url, set_as_current=False)
        self._app.conf.broker_connection_retry_on_startup = True
        self._app.conf.update(transport_options(broker_url))
        self._fair = fair

    def enqueue(self, job: QueuedJob) -> None:
        """Queue one job; raises QueueUnavailableError when Redis did not take it."""
        try:
            if self._fair is not None:
                self._fair.push([job])
            self._send(job.job_id)
        except Exception as exc:
            # kombu and redis raise many transport-specific types; all mean "not enqueued".
            raise QueueUnavailableError(str(exc)) from exc

    def enqueue_many(self, jobs: Sequence[QueuedJob]) -> list[str]:
        """Queue the jobs, their messages through one producer (one connection for all).
        Returns the ids NOT sent: from the first refusal on (its retries already spent,
        the broker is down: trying each of the rest would only wait for each one's)."""
        sent = 0
        try:
            if self._fair is not None:
                self._fair.push(jobs)
            with self._app.producer_or_acquire() as producer:
                for job in jobs:
                    self._send(job.job_id, producer)
                    sent += 1
        except Exception:
            # kombu and redis raise many transport-specific types; all mean "not enqueued".
            return [job.job_id for job in jobs[sent:]]
        return []

    def forget(self, jobs: Sequence[tuple[str, str]]) -> None:
        """Cancelled jobs, as (job id, tenant), leave the fair-share sets: they would take
        stride turns from their tenant's live jobs until popped. Best effort, after the
        commit: an entry left (Redis down) is popped later and skipped by the claim."""
        if self._fair is None or not jobs:
            return
        try:
            self._fair.remove_many(jobs)
        except Exception as exc:  # redis raises many types; the cancel is stored already
            log.warning("cancelled jobs left in the fair-share sets (%s): skipped when popped", exc)

    def _send(self, job_id: str, producer: object | None = None) -> None:
        options: dict[str, Any] = {"queue": JOBS_QUEUE, "producer": producer, "retry": True,
                                   "retry_policy": _RETRY_POLICY}  # fmt: skip
        if self._fair is not None:
            # A token names no job: the worker pops the one fair share picks.
            self._app.send_task(RUN_NEXT, priority=TOKEN_PRIORITY, **options)
            return
        # Flower and Celery's events show the task under the job's own id.
        self._app.send_task(PROCESS_JOB, args=[job_id], task_id=job_id, **options)

    def close(self) -> None:
        self._app.close()
