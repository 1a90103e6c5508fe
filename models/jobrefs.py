"""Naming jobs: a full id or a unique prefix of one, and many jobs read by id at once.

Every route under /v1/jobs/{id} resolves its id with :func:`resolve_job_id`, so a prefix
the CLI printed (``visionq submit --wait`` shows 8 characters) names the job everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from visionq.models.jobs import is_job_id
from visionq.models.tables import Job
from visionq.vision.errors import CodedError

# 8 hex characters of a random UUID: 4 billion values, so a tenant needs tens of thousands
# of jobs before two share one; fewer would make ambiguity usual.
MIN_PREFIX = 8
# Candidates listed in an ambiguous-prefix error: enough to pick from, never a dump.
MAX_CANDIDATES = 5
_PREFIX = re.compile(r"[0-9a-f-]+")


class JobIdError(CodedError, ValueError):
    """A job id or prefix in a request names no single job of the tenant: too short a
    prefix, no match, or several matches (``candidates``); see resolve_job_id."""

    codes = frozenset({"invalid_job_id", "job_not_found", "ambiguous_job_id"})

    def __init__(self, code: str, message: str, candidates: Sequence[str] = ()) -> None:
        super().__init__(code, message)
        self.candidates = list(candidates)


def resolve_job_id(session: Session, *, tenant: str, job_id: str) -> str:
    """The full id of the tenant's job named by ``job_id``: its id or a unique prefix of it.

    Raises JobIdError with code ``invalid_job_id`` (a prefix shorter than MIN_PREFIX),
    ``job_not_found`` (no job of the tenant matches; other tenants' jobs never do) or
    ``ambiguous_job_id`` (several match; ``candidates`` lists some of them).
    """
    wanted = job_id.strip().lower()
    if is_job_id(wanted):
        found = session.scalar(select(Job.id).where(Job.id == wanted, Job.tenant == tenant))
        if found is None:
            raise _not_found(job_id)
        return found
    if not _PREFIX.fullmatch(wanted) or len(wanted) > 36:
        raise _not_found(job_id)
    if len(wanted.replace("-", "")) < MIN_PREFIX:
        raise JobIdError(
            "invalid_job_id",
            f"Job id prefix {job_id!r} is too short: give at least {MIN_PREFIX} hex characters "
            "of the id (or the whole id).",
        )
    # The prefix holds only hex digits and dashes, so LIKE has nothing to escape.
    query = (
        select(Job.id)
        .where(Job.tenant == tenant, Job.id.like(f"{wanted}%"))
        .order_by(Job.id)
        .limit(MAX_CANDIDATES + 1)
    )
    matches = list(session.scalars(query))
    if not matches:
        raise _not_found(job_id)
    if len(matches) > 1:
        shown = ", ".join(matches[:MAX_CANDIDATES])
        more = " and more" if len(matches) > MAX_CANDIDATES else ""
        raise JobIdError(
            "ambiguous_job_id",
            f"Job id prefix {job_id!r} matches several jobs ({shown}{more}); give more "
            "characters of the id.",
            matches[:MAX_CANDIDATES],
        )
    return matches[0]


def not_found_message(job_id: str) -> str:
    """What every "no such job" answer says (here and in api/jobids.py); an id given with
    control characters (a path's %0A) is shown escaped."""
    shown = job_id if job_id.isprintable() else job_id.encode("unicode_escape").decode()
    return f"No job {shown} for this tenant."


def _not_found(job_id: str) -> JobIdError:
    return JobIdError("job_not_found", not_found_message(job_id))


def get_jobs(session: Session, *, tenant: str, job_ids: Sequence[str]) -> list[Job]:
    """The tenant's jobs among ``job_ids`` (full ids), with inputs and attempts, in the order
    asked; ids naming no job of the tenant are left out."""
    wanted = list(dict.fromkeys(job_id for job_id in job_ids if is_job_id(job_id)))
    if not wanted:
        return []
    query = (
        select(Job)
        .where(Job.tenant == tenant, Job.id.in_(wanted))
        .options(selectinload(Job.inputs), selectinload(Job.attempts))
    )
    found = {job.id: job for job in session.scalars(query)}
    return [found[job_id] for job_id in wanted if job_id in found]
