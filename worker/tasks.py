"""Celery tasks: thin wrappers that hand a job id to the pipeline.

The task id of a job's message is the job's id, and the task's state follows the job: a
job that ends failed makes the task raise ``JobFailedError`` once the failure is stored,
so Celery's events (what Flower shows) say FAILURE under the job's id, with its error code
and message. It is one of the task's expected errors (``throws``): logged in one line,
never retried, and with acks_late the message is acknowledged all the same (Celery acks
a failed task; only a lost worker gives a message back). A cancelled job's task sends the
``task-revoked`` event (Flower: REVOKED) and raises ``Ignore``, so no ``task-succeeded``
follows it; an ignored task's message is acknowledged too.
"""

from __future__ import annotations

import logging
import os
import random
import time
from functools import cache
from typing import Any

import redis
from celery import Celery, Task, signals
from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.exceptions import Ignore
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.broker import (
    JOB_PRIORITY,
    JOBS_QUEUE,
    PROCESS_JOB,
    RUN_NEXT,
    TOKEN_PRIORITY,
)
from visionq.models.fairqueue import FairQueue, QueuedJob
from visionq.models.leases import DueJob, mark_popped
from visionq.models.metrics import count_ended, use_catalogue
from visionq.models.metrics_expose import process_dead
from visionq.models.outcomes import fail_job
from visionq.models.settings import Settings, get_settings
from visionq.models.tables import Job, JobStatus
from visionq.vision.catalogue import load_catalogue
from visionq.worker.celery_app import app
from visionq.worker.context import WorkerContext
from visionq.worker.heartbeat import Heartbeat
from visionq.worker.lifecycle import (
    BatchLaneThread,
    SweeperThread,
    WorkerLifecycle,
    open_resources,
)
from visionq.worker.pipeline import run_job
from visionq.worker.watchdog import JobDeadlineExceeded, Watchdog

# Errors that mean "the database is unreachable right now", not "this job is bad".
_DB_UNAVAILABLE = (OperationalError, InterfaceError)

log = logging.getLogger(__name__)


class JobFailedError(Exception):
    """The job ended failed (already stored): raised so the task's state is FAILURE."""

    def __init__(self, job_id: str, code: str | None, message: str | None) -> None:
        # The arguments as args: Celery pickles the exception (and rebuilds it from them).
        super().__init__(job_id, code, message)
        self.job_id, self.code, self.message = job_id, code, message

    def __str__(self) -> str:
        return f"job {self.job_id} failed: {self.code or 'unknown'}: {self.message or ''}"


def _job_failed(context: WorkerContext, job_id: str) -> JobFailedError | None:
    """The task's FAILURE for a job that ended failed (its stored code and message), None
    for a job in any other state."""
    try:
        with context.sessions() as session:
            job = session.get(Job, job_id)
            if job is None or job.status != JobStatus.FAILED:
                return None
            return JobFailedError(job_id, job.error_code, job.error_message)
    except _DB_UNAVAILABLE:  # the failure is stored; only its wording cannot be read now
        return JobFailedError(job_id, None, "the error could not be read back")


def _job_cancelled(context: WorkerContext, job_id: str) -> bool:
    """True when the job ended cancelled (False when that cannot be read now)."""
    try:
        with context.sessions() as session:
            job = session.get(Job, job_id)
            return job is not None and job.status == JobStatus.CANCELLED
    except _DB_UNAVAILABLE:
        return False


def _revoked(task: Task, job_id: str) -> Ignore:
    """Announce the task revoked (what Flower shows for a cancelled job) and return the
    Ignore to raise: Celery then sends no task-succeeded event after it."""
    try:
        task.send_event("task-revoked", retry=False, terminated=False, signum=None, expired=False)
    except Exception as exc:  # only Flower's view is at stake: the job is stored cancelled
        log.info("job %s: task-revoked event not sent (%s)", job_id, exc)
    return Ignore(f"job {job_id} was cancelled")


class PipelineTask(Task):  # type: ignore[misc]
    """Task base handing a job the resources its worker process opened (WORKER)."""

    @property
    def context(self) -> WorkerContext:
        """The process's job context (worker/context.py)."""
        return WORKER.resources.context

    @property
    def watchdog(self) -> Watchdog:
        """The process's job watchdog (worker/watchdog.py)."""
        return WORKER.resources.watchdog


@app.task(  # type: ignore[untyped-decorator]
    name=PROCESS_JOB, base=PipelineTask, bind=True, max_retries=120, throws=(JobFailedError,)
)
def process_job(self: PipelineTask, job_id: str) -> str:
    """Run job ``job_id``; every outcome, even a bug of ours, ends the job with a reason."""
    context = self.context
    started = time.monotonic()
    try:
        outcome = run_job(context, job_id, self.watchdog)
        # Failures at WARNING; job_id and outcome as fields for VISIONQ_LOG_FORMAT=json.
        log.log(
            logging.WARNING if outcome == "failed" else logging.INFO,
            "job %s %s in %.2f s", job_id, outcome, time.monotonic() - started,
            extra={"job_id": job_id, "outcome": outcome},
        )  # fmt: skip
    except JobDeadlineExceeded:
        # The watchdog ended the job (deadline_exceeded) and interrupted this thread.
        log.warning(
            "job %s stopped at its deadline after %.2f s", job_id, time.monotonic() - started,
            extra={"job_id": job_id, "outcome": "failed"},
        )  # fmt: skip
        outcome = "failed"
    except _DB_UNAVAILABLE as exc:
        # The database is down or restarting: nothing could be recorded, so the message is
        # sent again later. A lease this run took lapses; the next claim takes it over.
        countdown = min(30.0, 2.0 ** min(self.request.retries, 5)) * random.uniform(0.5, 1.0)
        log.warning("job %s: database unavailable (%s); again in %.1f s", job_id, exc, countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc
    except Exception as exc:
        # Not swallowed: logged with its traceback, and the job ends failed with the cause
        # instead of staying "running" forever.
        log.exception("job %s crashed", job_id)
        with context.sessions.begin() as session:
            ended = fail_job(
                session, job_id, code="internal_error", message=f"{type(exc).__name__}: {exc}"
            )
        if ended is not None:  # counted once committed
            count_ended([ended])
        outcome = "failed"
    # The failure is stored: now the task's state follows the job's (a message delivered
    # again for a job that already failed, "skipped", fails the same way).
    failed = _job_failed(context, job_id) if outcome in ("failed", "skipped") else None
    if failed is not None:
        raise failed
    if outcome in ("skipped", "discarded") and _job_cancelled(context, job_id):
        raise _revoked(self, job_id)
    return outcome


@cache
def fair_queue() -> FairQueue:
    """This process's handle on the fair-share sets (models/fairqueue.py), built once."""
    settings = get_settings()
    # Bounded waits: a token's pop must not hang on an unreachable Redis.
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    return FairQueue(client, weights=settings.tenant_weights)


def pop_next(fair: FairQueue, sessions: sessionmaker[Session] | None) -> str | None:
    """Pop the job fair share picks and record it sent now (``enqueued_at``), so that the
    sweeper's VISIONQ_REQUEUE_AFTER_S counts from the pop: a job waiting in its tenant's set
    is not "lost", a popped one not claimed in time is (its worker died before sending it
    on). None when nothing waits."""
    job_id = fair.pop()
    if job_id is None or sessions is None:
        return job_id
    try:
        with sessions.begin() as session:
            mark_popped(session, job_id)
    except Exception as exc:  # popped: sending it on matters more (the claim needs no mark)
        log.warning("job %s: popped, but its send time not stored (%s)", job_id, exc)
    return job_id


def _worker_sessions() -> sessionmaker[Session] | None:
    try:
        return WORKER.resources.context.sessions
    except RuntimeError:  # resources not open (a process that runs no jobs): nothing to mark
        return None


@app.task(name=RUN_NEXT, bind=True, acks_late=True)  # type: ignore[untyped-decorator]
def run_next(self: Task) -> str:
    """A free slot's token: pop the job fair share picks and send its PROCESS_JOB message
    (under the job's id, so Flower shows the job, decision 16 of issue 23) at the priority
    consumed first. The job is not run here. A token finding nothing waiting is a no-op
    (tokens may outnumber jobs: the sweeper's top-ups, a cancelled job's entry)."""
    job_id = pop_next(fair_queue(), _worker_sessions())
    if job_id is None:
        return "empty"
    # Not sent (Redis down): the job stays queued in the database, and the sweeper pushes
    # it again once its pop is older than VISIONQ_REQUEUE_AFTER_S.
    app.send_task(
        PROCESS_JOB, args=[job_id], task_id=job_id, queue=JOBS_QUEUE, priority=JOB_PRIORITY
    )
    return "dispatched"


def send_job(job: DueJob) -> bool:
    """Send a job again (the sweeper); False when it was still waiting in its tenant's set
    (nothing sent). See ``send_due``."""
    return send_due(app, fair_queue(), job, fair_share=get_settings().fair_share)


def send_due(celery: Celery, fair: FairQueue, job: DueJob, *, fair_share: bool) -> bool:
    """Fair share: push the job to its tenant's set and send a token only if it was not
    waiting there already (False: nothing sent; a token lost for a job still waiting is
    made up by ``upkeep``). Off: its message, under the job's id as its task id, as the
    API sends it."""
    if not fair_share:
        celery.send_task(PROCESS_JOB, args=[job.id], queue=JOBS_QUEUE, task_id=job.id)
        return True
    if not fair.push([QueuedJob(job.id, job.tenant, job.priority)]):
        return False
    celery.send_task(RUN_NEXT, queue=JOBS_QUEUE, priority=TOKEN_PRIORITY)
    return True


def fair_upkeep(limit: int) -> int:
    """The sweeper's fair-share upkeep (``upkeep``) with this worker's app and settings."""
    return upkeep(app, fair_queue(), fair_share=get_settings().fair_share, limit=limit)


def upkeep(celery: Celery, fair: FairQueue, *, fair_share: bool, limit: int) -> int:
    """Up to ``limit`` messages for jobs waiting in the fair-share sets; returns how many.

    Fair share on: send the tokens missing, ``jobs waiting in the sets - tokens waiting in
    the broker``. Only tokens are counted (they alone are sent at TOKEN_PRIORITY, so they
    alone fill that priority's list), and tokens taken by workers and not yet run are not
    subtracted: a killed worker's taken tokens stay in kombu's unacked hash until the
    visibility timeout (hours), and a token lost with Redis (or evicted) is in no list at
    all, so a count kept apart from the lists (a counter) would see tokens that will not
    come. The cost is a few surplus tokens, at most the tokens workers hold, each a no-op
    pop ("empty"): duplicate tokens are harmless, missing ones strand jobs.

    Fair share off: jobs still waiting in the sets (pushed while it was on, their tokens
    lost or already consumed) are popped and sent as FIFO messages by id, ``limit`` per
    sweep, until the sets are empty."""
    if not fair_share:
        drained = 0
        while drained < limit and (job_id := fair.pop()) is not None:
            celery.send_task(PROCESS_JOB, args=[job_id], queue=JOBS_QUEUE, task_id=job_id)
            drained += 1
        if drained:
            log.info("fair share is off: sent %d job(s) left in the fair-share sets", drained)
        return drained
    waiting = fair.size()
    if waiting <= 0:
        return 0
    with celery.connection_for_write() as connection:
        channel = connection.default_channel
        tokens = int(channel.client.llen(channel._q_for_pri(JOBS_QUEUE, TOKEN_PRIORITY)))
        missing = max(min(limit, waiting - tokens), 0)
        for _ in range(missing):
            celery.send_task(RUN_NEXT, queue=JOBS_QUEUE, priority=TOKEN_PRIORITY)
    return missing


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Every worker records a heartbeat for /readyz (see worker/heartbeat.py)."""
    settings = get_settings()
    # Bounded waits: a beat must not hang on an unreachable Redis (the next one retries).
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    heartbeat = Heartbeat(client, settings)
    heartbeat.start()
    signals.worker_shutting_down.connect(lambda **_: heartbeat.stop(), weak=False)


def _sweeper(settings: Settings) -> SweeperThread:
    return SweeperThread(settings, send_job, top_up=fair_upkeep)


# The worker's resources in this process: opened and closed by the signals below.
WORKER = WorkerLifecycle(open_resources, open_sweeper=_sweeper, open_batch_lane=BatchLaneThread)


def _runs_jobs_in_main_process(worker: Any) -> bool:
    """False for the prefork pool, whose child processes run the jobs (and open their own
    resources on worker_process_init); True for threads (and solo, which also sends it)."""
    pool = get_implementation(getattr(worker, "pool_cls", None) or "prefork")
    return not (isinstance(pool, type) and issubclass(pool, PreforkPool))


@signals.worker_init.connect  # type: ignore[untyped-decorator]
def _open_worker(sender: Any = None, **_: Any) -> None:
    """Main process: open the job resources unless pool processes run the jobs."""
    settings = get_settings()
    # Metric labels name this catalogue's models (prefork children inherit it).
    use_catalogue(load_catalogue(settings.catalogue_override()))
    if _runs_jobs_in_main_process(sender):
        WORKER.open(settings)


@signals.worker_process_init.connect  # type: ignore[untyped-decorator]
def _open_pool_process(**_: Any) -> None:
    """A pool process (prefork child, or solo's main process): open its job resources."""
    WORKER.open(get_settings())


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _start_sweeper(sender: Any = None, **_: Any) -> None:
    """Every worker runs the sweeper in a thread of its main process (see worker/sweeper.py)."""
    settings = get_settings()
    if settings.sweeper_enabled:
        WORKER.start_sweeper(settings)


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _start_batch_lane(sender: Any = None, **_: Any) -> None:
    """Every worker runs the Gemini Batch lane in a thread of its main process; one of them
    works at a time (worker/batch_lane.py). With VISIONQ_BATCH_LANE_ENABLED=false it gathers
    nothing new but follows the Gemini batches already sent until they end."""
    WORKER.start_batch_lane(get_settings())


@signals.worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _stop_sweeping(**_: Any) -> None:
    """No new sweep nor batch tick once the worker is asked to stop (jobs under way may
    still finish)."""
    WORKER.stop_sweeper()
    WORKER.stop_batch_lane()


@signals.worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _close_pool_process(**_: Any) -> None:
    """A pool process ends: close its engine, Redis, Gemini client and watchdog."""
    WORKER.close_resources()
    process_dead(os.getpid())  # its counters stay in the sums; only live gauges go


@signals.worker_shutdown.connect  # type: ignore[untyped-decorator]
def _close_worker(**_: Any) -> None:
    """The worker stops (its jobs ended): close the sweeper and the job resources."""
    WORKER.close()
