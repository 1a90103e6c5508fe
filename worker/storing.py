"""Keeping a paid answer: the parsed result is stored with retries through storage faults.

Once Gemini has answered, the call is paid for. A database that is locked or down, a blob
store that is full or read-only, or Redis failing is the infrastructure's fault, not the
job's: the parsed result stays in memory and the store (mask blobs, then the job row) is
tried again with full-jitter backoff until the job's deadline. If it still cannot be
stored the job is left running: its lease lapses, the sweeper delivers it again and the
next delivery asks Gemini again (a second, paid, call). The job fails only for its own
reasons (an unreadable answer, a schema mismatch, ...), never for a storage fault.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from visionq.models.blobs import BlobStore, BlobStoreUnavailableError
from visionq.models.leases import JobSpec
from visionq.vision.masks import parse_segments
from visionq.vision.task_registry import TASKS
from visionq.vision.tasks import ImageSize, TaskKind, parse_answer

log = logging.getLogger(__name__)

# Faults of the database, blob store or Redis: retried or left to redelivery, never a
# failed job (SQLite "database is locked" and a PostgreSQL restart are OperationalErrors).
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    BlobStoreUnavailableError,
    redis.RedisError,
)
# Storing is quick when the store is healthy: a fault is polled at least this often.
MAX_STORE_DELAY_S = 5.0
DEFERRED = "deferred"


@dataclass
class ParsedAnswer:
    """A job's result read from an answer, with the mask PNGs it names still to store."""

    result: dict[str, Any]
    masks: list[bytes] = field(default_factory=list)

    def store_masks(self, blobs: BlobStore) -> None:
        """Put the masks (idempotent: a mask stored by an earlier try is not written again)."""
        for mask in self.masks:
            blobs.put(mask)


def interpret(job: JobSpec, text: str) -> ParsedAnswer:
    """The job's result from the answer text (pure: raises only for the answer's faults);
    segmentation masks are named by their sha256, to be stored before the result."""
    task = TaskKind(job.task)
    sizes = [ImageSize(width=item.width, height=item.height) for item in job.inputs]
    if not TASKS[task].masks:
        result = parse_answer(
            task, text, images=sizes, labels=job.labels, schema=job.response_schema
        )
        return ParsedAnswer(result)
    segments, skipped = parse_segments(text, sizes[0].width, sizes[0].height)
    objects = [
        {
            "label": segment.label,
            "box_2d": segment.box_2d,
            "box": list(segment.box),
            "area": segment.area,
            "mask_sha256": hashlib.sha256(segment.mask_png).hexdigest(),
            "mask_url": f"/v1/jobs/{job.id}/masks/{index}.png",
        }
        for index, segment in enumerate(segments)
    ]
    image = {"width": sizes[0].width, "height": sizes[0].height}
    result = {"objects": objects, "skipped": skipped, "image": image}
    return ParsedAnswer(result, [segment.mask_png for segment in segments])


def keep(
    store: Callable[[], str],
    *,
    job_id: str,
    deadline: float,
    base_s: float,
    max_delay_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Run ``store`` until it returns; infrastructure faults are retried with full-jitter
    backoff while the job's ``deadline`` (monotonic) allows, then :data:`DEFERRED` (the
    job stays running for redelivery). Other errors propagate: they are the job's own."""
    cap = min(max_delay_s, MAX_STORE_DELAY_S)
    tries = 0
    while True:
        try:
            return store()
        except INFRASTRUCTURE_ERRORS as exc:
            tries += 1
            delay = random.uniform(0, min(cap, base_s * 2 ** min(tries, 20)))
            if time.monotonic() + delay >= deadline:
                log.error(
                    "job %s: answered, but could not store its result in %d tries (%s); "
                    "left running for redelivery when its lease lapses",
                    job_id, tries, exc,
                )  # fmt: skip
                return DEFERRED
            log.warning("job %s: storing its answer failed (%s); again in %.2f s",
                        job_id, exc, delay)  # fmt: skip
            sleep(delay)
