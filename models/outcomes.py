"""How a run ends: its attempt closed, its inputs' transports recorded, the job completed
or failed with its usage and cost, the tenant's budget settled and the webhook event
written (models/webhook_outbox.py, when someone listens) in the same transaction.

Every end is a conditional UPDATE (from an active status, under the worker's lease), so a
redelivered message or a presumed-dead worker cannot end a job twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Update, bindparam, func, literal_column, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from visionq.models.budgets import reserve, settle
from visionq.models.ended import ENDED_COLUMNS, EndedJob, ended_from_row
from visionq.models.jobs import ACTIVE_STATUSES
from visionq.models.tables import (
    ATTEMPTS,
    JOB_INPUTS,
    JOBS,
    TERMINAL_STATUSES,
    AttemptOutcome,
    JobStatus,
    utcnow,
)
from visionq.models.webhook_outbox import (
    NewEvent,
    job_event_type,
    listens_clause,
    record_event,
)

# The worker's per-job statements are built once (see models/leases.py for why); values
# are passed at execution: an UPDATE without .values() sets the columns named in them.
_SET_TRANSPORT = update(JOB_INPUTS).where(
    JOB_INPUTS.c.job_id == bindparam("input_job_id"),
    JOB_INPUTS.c.position == bindparam("input_position"),
)
_FINISH_ATTEMPT = update(ATTEMPTS).where(ATTEMPTS.c.id == bindparam("attempt_id"))


def set_transports(session: Session, job_id: str, transports: Sequence[str]) -> None:
    """Record how each input reached Gemini (inline bytes or the File API)."""
    connection = session.connection()
    # One execute per input (usually one): an executemany costs several times more CPU.
    for position, transport in enumerate(transports):
        connection.execute(
            _SET_TRANSPORT,
            {"input_job_id": job_id, "input_position": position, "transport": transport},
        )


def finish_attempt(
    session: Session,
    attempt_id: int,
    *,
    outcome: AttemptOutcome,
    error_class: str | None = None,
    error_message: str | None = None,
    http_status: int | None = None,
    usage: dict[str, Any] | None = None,
    cost_nusd: int | None = None,
    retry_delay_s: float | None = None,
    requested_tier: str | None = None,
    served_tier: str | None = None,
) -> None:
    """Close an attempt with its outcome (what its Gemini call cost, and how long the
    worker waits before the next attempt). ``requested_tier`` and ``served_tier`` (the tier
    asked of Gemini and the one that answered) are written only when given: an attempt of
    the batch lane carries its requested tier from when it was opened."""
    params: dict[str, Any] = {
        "attempt_id": attempt_id,
        "finished_at": utcnow(),
        "outcome": outcome,
        "error_class": error_class,
        "error_message": error_message,
        "http_status": http_status,
        "usage": usage,
        "cost_nusd": cost_nusd,
        "retry_delay_s": retry_delay_s,
    }
    _set_given(params, requested_tier=requested_tier, served_tier=served_tier)
    session.connection().execute(_FINISH_ATTEMPT, params)


def _set_given(params: dict[str, Any], **values: Any) -> None:
    # A column named in the parameters is set (to NULL too): only the given ones are named.
    params.update({key: value for key, value in values.items() if value is not None})


@dataclass(frozen=True)
class Usage:
    """Token counts from Gemini's usage_metadata, plus the whole metadata as sent."""

    prompt_tokens: int | None
    candidates_tokens: int | None
    thoughts_tokens: int | None
    cached_tokens: int | None
    total_tokens: int | None
    raw: dict[str, Any]

    def plus(self, other: Usage | None) -> Usage:
        """Both calls' tokens together (a job may call Gemini more than once); raw is ours."""
        if other is None:
            return self

        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Usage(
            prompt_tokens=add(self.prompt_tokens, other.prompt_tokens),
            candidates_tokens=add(self.candidates_tokens, other.candidates_tokens),
            thoughts_tokens=add(self.thoughts_tokens, other.thoughts_tokens),
            cached_tokens=add(self.cached_tokens, other.cached_tokens),
            total_tokens=add(self.total_tokens, other.total_tokens),
            raw=other.raw,
        )

    def columns(self) -> dict[str, Any]:
        """The Job column values for this usage."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "candidates_tokens": self.candidates_tokens,
            "thoughts_tokens": self.thoughts_tokens,
            "cached_tokens": self.cached_tokens,
            "total_tokens": self.total_tokens,
            "usage": self.raw,
        }


def complete_job(
    session: Session,
    job_id: str,
    *,
    result: dict[str, Any],
    usage: Usage | None,
    model_version: str | None,
    cost_nusd: int | None = None,
    lease_token: str | None = None,
    warnings: list[dict[str, str]] | None = None,
    served_tier: str | None = None,
    standard_cost_nusd: int | None = None,
    summed: bool = False,
) -> EndedJob | None:
    """Store the result of a running job: the job as it ended; None if it is no longer
    running (cancelled) or, with ``lease_token``, no longer held under that lease (another
    worker took it over).

    The budget reservation is settled to the actual cost in the same transaction.
    ``served_tier`` is the tier of the call whose answer is stored; ``standard_cost_nusd``
    what the job's calls would have cost at the standard price. ``summed``: ``cost_nusd``
    is already the job's whole cost (else, when None, its attempts' sum is taken).
    """
    values: dict[str, Any] = {
        "status": JobStatus.SUCCEEDED,
        "result": result,
        "model_version": model_version,
    }
    _set_given(values, served_tier=served_tier, standard_cost_nusd=standard_cost_nusd)
    if warnings:
        # The whole list (the submit's warnings and the run's): it replaces the column.
        values["warnings"] = warnings
    return _end(
        session, job_id, (JobStatus.RUNNING,), values, usage, cost_nusd, lease_token, summed
    )


def fail_job(
    session: Session,
    job_id: str,
    *,
    code: str,
    message: str,
    usage: Usage | None = None,
    cost_nusd: int | None = None,
    lease_token: str | None = None,
    warnings: list[dict[str, str]] | None = None,
    standard_cost_nusd: int | None = None,
    summed: bool = False,
) -> EndedJob | None:
    """End an active job as failed: the job as it ended; None if it had already ended (or,
    with ``lease_token``, is no longer held under that lease). ``warnings``, when given, is
    the job's whole list (the submit's and the run's); ``summed`` as for complete_job."""
    values: dict[str, Any] = {
        "status": JobStatus.FAILED,
        "error_code": code,
        "error_message": message,
    }
    _set_given(values, standard_cost_nusd=standard_cost_nusd)
    if warnings:
        values["warnings"] = warnings
    return _end(session, job_id, ACTIVE_STATUSES, values, usage, cost_nusd, lease_token, summed)


def _any_status(statuses: Sequence[str]) -> ColumnElement[bool]:
    # OR of equalities rather than IN: a constant IN list is expanded at every execution.
    return or_(*(JOBS.c.status == status for status in statuses))


def _end_statement(from_statuses: Sequence[str], *, fenced: bool) -> Update:
    fence = [JOBS.c.lease_token == bindparam("fence_token")] if fenced else []
    return (
        update(JOBS)
        .where(JOBS.c.id == bindparam("end_job_id"), _any_status(from_statuses), *fence)
        # Whether an endpoint of the tenant wants the end event (the bit of the status
        # set): the outbox's probe rides on this statement.
        # (Named in full: SQLite renders RETURNING columns bare, and a bare "tenant" in the
        # subquery would be the endpoint's own.)
        .returning(
            *ENDED_COLUMNS, listens_clause(literal_column("jobs.tenant")).label("webhook_listens")
        )
    )


# Keyed by (statuses the job may end from, fenced by a lease token).
_END_FROM: tuple[tuple[JobStatus, ...], ...] = ((JobStatus.RUNNING,), ACTIVE_STATUSES)
_END: dict[tuple[tuple[JobStatus, ...], bool], Update] = {
    (statuses, fenced): _end_statement(statuses, fenced=fenced)
    for statuses in _END_FROM
    for fenced in (False, True)
}


@dataclass(frozen=True)
class RecordedCall:
    """A paid call recorded on one of a job's attempts: its usage_metadata, its cost, and
    the job's model (the standard price of the call)."""

    usage: dict[str, Any] | None
    cost_nusd: int | None
    model: str


_EARLIER_CALLS = (
    select(ATTEMPTS.c.usage, ATTEMPTS.c.cost_nusd, JOBS.c.model)
    .join(JOBS, JOBS.c.id == ATTEMPTS.c.job_id)
    .where(
        ATTEMPTS.c.job_id == bindparam("calls_job_id"),
        ATTEMPTS.c.id != bindparam("calls_attempt_id"),
        or_(ATTEMPTS.c.usage.is_not(None), ATTEMPTS.c.cost_nusd.is_not(None)),
    )
)
_ATTEMPTS_COST = select(func.sum(ATTEMPTS.c.cost_nusd)).where(
    ATTEMPTS.c.job_id == bindparam("sum_job_id")
)


def earlier_calls(session: Session, job_id: str, attempt_id: int) -> list[RecordedCall]:
    """The paid calls recorded on the job's attempts other than ``attempt_id`` (earlier
    attempts of this run, of runs before a crash, of Gemini batches it was released from):
    a job's cost and usage are those of all its attempts, whichever lane ran them."""
    rows = session.connection().execute(
        _EARLIER_CALLS, {"calls_job_id": job_id, "calls_attempt_id": attempt_id}
    )
    return [RecordedCall(row.usage, row.cost_nusd, row.model) for row in rows]


def record_late_call(
    session: Session,
    attempt_id: int,
    *,
    usage: dict[str, Any] | None,
    cost_nusd: int | None,
    served_tier: str | None,
) -> bool:
    """Record a paid call on an attempt already closed without one (a batch line answered
    after its job left the batch); False when it has one already (recorded once)."""
    if usage is None and cost_nusd is None:
        return False
    changed = session.execute(
        update(ATTEMPTS)
        .where(
            ATTEMPTS.c.id == attempt_id, ATTEMPTS.c.usage.is_(None), ATTEMPTS.c.cost_nusd.is_(None)
        )
        .values(usage=usage, cost_nusd=cost_nusd, served_tier=served_tier)
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def attempts_cost(session: Session, job_id: str) -> int:
    """What the job's attempts recorded so far (its paid calls, in any lane)."""
    return int(session.connection().execute(_ATTEMPTS_COST, {"sum_job_id": job_id}).scalar() or 0)


def charge_late(session: Session, job_id: str, cost_nusd: int | None) -> bool:
    """Count a paid call recorded on an attempt after its job ended (a batch line answered
    for a job cancelled or sent elsewhere meanwhile, an answer discarded by the fence) in
    the job's cost and its tenant's spend. A job still active needs nothing: its end sums
    its attempts. True when charged."""
    if not cost_nusd:
        return False
    ended = session.execute(
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.status.in_(TERMINAL_STATUSES))
        .values(cost_nusd=func.coalesce(JOBS.c.cost_nusd, 0) + cost_nusd)
        .returning(JOBS.c.tenant)
    ).first()
    if ended is None:
        return False
    settle(session, tenant=ended.tenant, reserved_nusd=0, cost_nusd=cost_nusd)
    return True


def _end(  # noqa: PLR0917 - private, called twice with all of them
    session: Session,
    job_id: str,
    from_statuses: tuple[JobStatus, ...],
    values: dict[str, Any],
    usage: Usage | None,
    cost_nusd: int | None,
    lease_token: str | None,
    summed: bool = False,
) -> EndedJob | None:
    """Move a job to a terminal state once, settling its budget reservation and writing
    its webhook event with it; the job as it ended, or None when it was not ended here.

    ``cost_nusd`` is the job's whole cost (``summed``: worker/completion.py sums its
    attempts); when not given (a job given up, or stopped past its deadline) it is the sum
    of what its attempts recorded: every paid call counts in the job's cost and its
    tenant's spend."""
    if cost_nusd is None and not summed:
        cost_nusd = session.connection().execute(_ATTEMPTS_COST, {"sum_job_id": job_id}).scalar()
    params = {**values, "finished_at": utcnow(), "end_job_id": job_id, "cost_nusd": cost_nusd,
              "lease_expires_at": None}  # fmt: skip
    if usage is not None:
        params.update(usage.columns())
    if lease_token is not None:
        params["fence_token"] = lease_token
    params["listen_bit"] = job_event_type(values["status"]).bit
    statement = _END[(from_statuses, lease_token is not None)]
    row = session.connection().execute(statement, params).first()
    if row is None:
        return None
    ended = ended_from_row(row, values["status"])
    settle(
        session, tenant=ended.tenant, reserved_nusd=ended.reserved_nusd, cost_nusd=cost_nusd or 0
    )
    record_event(
        session,
        NewEvent(ended.tenant, job_event_type(ended.status), ended.id, ended.callback_url),
        listens=bool(row.webhook_listens),
    )
    return ended


def hold_more(
    session: Session, *, job_id: str, lease_token: str, tenant: str, amount_nusd: int
) -> bool:
    """Hold ``amount_nusd`` more for a running job held under ``lease_token`` (a flex job
    falling back to standard): its reserved_nusd and its tenant's reservation both grow, so
    the settle at its end releases all of it. A job with nothing reserved (its tenant had no
    cap at submit) needs nothing: True. False when the budget refuses: the caller rolls the
    transaction back."""
    raised = (
        session.connection()
        .execute(
            update(JOBS)
            .where(
                JOBS.c.id == job_id,
                JOBS.c.lease_token == lease_token,
                JOBS.c.status == JobStatus.RUNNING,
                JOBS.c.reserved_nusd > 0,
            )
            .values(reserved_nusd=JOBS.c.reserved_nusd + amount_nusd)
            .returning(JOBS.c.id)
        )
        .first()
    )
    if raised is None:
        return True
    return reserve(session, tenant=tenant, amount_nusd=amount_nusd)


def hold_up_to(
    session: Session, *, job_id: str, lease_token: str, tenant: str, target_nusd: int
) -> bool:
    """Raise a running job's hold to ``target_nusd`` (its estimate at the tier it now runs
    at, when its hold was made at a cheaper one: a batch-lane job sent back to the sync
    lane): the difference is held against its tenant's budget. Idempotent: a redelivered
    run finds the hold already there and holds nothing more. A job with nothing reserved
    (its tenant had no cap at submit), or not held under ``lease_token``, needs nothing:
    True. False when the budget refuses: the caller rolls the transaction back."""
    held = session.scalar(
        select(JOBS.c.reserved_nusd).where(
            JOBS.c.id == job_id, JOBS.c.lease_token == lease_token,
            JOBS.c.status == JobStatus.RUNNING,
        )
    )  # fmt: skip
    if not held or held >= target_nusd:
        return True
    return hold_more(
        session, job_id=job_id, lease_token=lease_token, tenant=tenant,
        amount_nusd=target_nusd - held,
    )  # fmt: skip
