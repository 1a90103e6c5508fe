"""Enqueueing jobs: the API sends a Celery message by task name, holding only the job id."""

from __future__ import annotations

from celery import Celery

from visionq.models.broker import JOBS_QUEUE, PROCESS_JOB, transport_options


class QueueUnavailableError(RuntimeError):
    """The broker (Redis) did not take the message."""


class JobQueue:
    """A Celery producer bound to the broker URL; no task code is imported."""

    def __init__(self, broker_url: str) -> None:
        self._app = Celery("visionq-api", broker=broker_url, set_as_current=False)
        self._app.conf.broker_connection_retry_on_startup = True
        self._app.conf.update(transport_options(broker_url))

    def enqueue(self, job_id: str) -> None:
        try:
            self._app.send_task(
                PROCESS_JOB,
                args=[job_id],
                queue=JOBS_QUEUE,
                # Flower and Celery's events show the task under the job's own id.
                task_id=job_id,
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.1, "interval_step": 0.5},
            )
        except Exception as exc:
            # kombu raises many transport-specific types; all mean "not enqueued".
            raise QueueUnavailableError(str(exc)) from exc

    def close(self) -> None:
        self._app.close()
