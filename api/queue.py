"""Enqueueing jobs: the API sends a Celery message by task name, holding only the job id."""

from __future__ import annotations

from collections.abc import Sequence

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
            self._send(job_id)
        except Exception as exc:
            # kombu raises many transport-specific types; all mean "not enqueued".
            raise QueueUnavailableError(str(exc)) from exc

    def enqueue_many(self, job_ids: Sequence[str]) -> list[str]:
        """Send the jobs' messages through one producer (one connection for all of them).
        Returns the ids NOT sent: from the first refusal on (its retries already spent,
        the broker is down: trying each of the rest would only wait for each one's)."""
        sent = 0
        try:
            with self._app.producer_or_acquire() as producer:
                for job_id in job_ids:
                    self._send(job_id, producer)
                    sent += 1
        except Exception:
            # kombu raises many transport-specific types; all mean "not enqueued".
            return list(job_ids[sent:])
        return []

    def _send(self, job_id: str, producer: object | None = None) -> None:
        self._app.send_task(
            PROCESS_JOB,
            args=[job_id],
            queue=JOBS_QUEUE,
            # Flower and Celery's events show the task under the job's own id.
            task_id=job_id,
            producer=producer,
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.1, "interval_step": 0.5},
        )

    def close(self) -> None:
        self._app.close()
