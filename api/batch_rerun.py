"""POST /v1/batches/{id}/rerun: a new job for each ended item that failed (or was cancelled),
optionally only for some error codes, optionally on another model or with other options.

The new job is made from the old job's stored inputs (no blob read, no image check: they
were checked when first added) and its fields, admitted again with the changes (a model
retired since is a 422). Old jobs and their attempts stay as they are; the item points at
its latest job, whose ``retry_of`` names the one it replaces. Pages of items, one
transaction each, which starts by locking the batch row: two concurrent re-runs cannot both
pick an item (the second sees the new queued job).

A retry of an item's latest job (POST /v1/jobs/{id}/retry, :func:`retry_item`) is a re-run
of that one item through the same path, with a retry's own rules (its job's priority, no
cached answer for a succeeded job, an Idempotency-Key).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionq.api.batch_create import check_item_fields
from visionq.api.batch_ids import batch_not_found, batch_refused
from visionq.api.batch_progress import batch_public
from visionq.api.batch_schemas import RerunRequest, RerunResult
from visionq.api.batch_store import PlannedJob, job_rows, send_after_commit, to_send
from visionq.api.budget_gate import budget_refusal, economy_and_estimate, unbounded_refusal
from visionq.api.deps import ApiResources, Caller
from visionq.api.errors import ApiError
from visionq.api.job_checks import AdmittedFields, admit_fields
from visionq.api.jobids import job_not_found
from visionq.api.rawjob import RawJob
from visionq.api.schemas import JobPublic
from visionq.api.submission import replay
from visionq.models.batch_reruns import RerunSource, repoint_items, rerun_sources
from visionq.models.batches import add_counts, get_batch, lock_for_write
from visionq.models.batchjobs import (
    BatchRef,
    NewJobRow,
    RerunFields,
    batch_refs,
    find_cached_many,
    insert_jobs,
    job_inputs_of,
    rerun_fields,
)
from visionq.models.budgets import has_caps, reserve
from visionq.models.idempotency import remember
from visionq.models.jobs import NewInput, get_job
from visionq.models.leases import count_active
from visionq.models.metrics import count_new_rows
from visionq.models.tables import TERMINAL_STATUSES, Batch, BatchState, Job, JobStatus
from visionq.vision.costing import to_nano
from visionq.vision.estimate import StoredEstimate
from visionq.vision.pricing import format_usd
from visionq.vision.tasks import JobOptions, cache_key

# Items per transaction (and per IN list).
PAGE = 500
_RERUNNABLE = frozenset({BatchState.OPEN, BatchState.CLOSED})


class _Planner:
    """Plans the new jobs; fields admitted once per distinct field set, estimates once per
    (field set, image sizes)."""

    def __init__(self, body: RerunRequest, resources: ApiResources, capped: bool) -> None:
        self._body = body
        self._resources = resources
        self.capped = capped
        self.priority = resources.settings.default_priority
        self._fields: dict[str, AdmittedFields] = {}
        self._estimates: dict[
            tuple[str, tuple[tuple[int, int], ...]], tuple[JobOptions, StoredEstimate]
        ] = {}

    def plan(self, old: RerunFields, inputs: Sequence[NewInput]) -> PlannedJob:
        options = old.options.stored()
        options.update(self._body.options or {})
        raw = RawJob(
            task=old.task,
            prompt=old.prompt,
            model=self._body.model or old.model,
            labels=list(old.labels) if old.labels is not None else None,
            options=options,
            schema=old.response_schema,
        )
        memo = json.dumps(
            [raw.task, raw.prompt, raw.model, raw.labels, raw.options, raw.schema, len(inputs)],
            sort_keys=True,
            default=str,
        )
        fields = self._fields.get(memo)
        if fields is None:
            settings = self._resources.settings
            fields = admit_fields(raw, len(inputs), settings, self._resources.costs.catalogue)
            self._fields[memo] = fields
        sizes = tuple((item.width, item.height) for item in inputs)
        found = self._estimates.get((memo, sizes))
        if found is None:
            found = economy_and_estimate(fields, list(sizes), self._resources)
            self._estimates[(memo, sizes)] = found
        job_options, estimate = found
        if self.capped and estimate.cost_usd is None:
            raise unbounded_refusal(fields.model, estimate)
        key = cache_key(
            image_sha256s=[item.sha256 for item in inputs], task=fields.task,
            prompt=fields.prompt, labels=fields.labels, schema=fields.schema,
            model=fields.model, options=job_options,
        )  # fmt: skip
        return PlannedJob(
            fields=fields,
            options=job_options,
            estimate=estimate,
            inputs=list(inputs),
            cache_key=key,
            retry_of=old.id,
        )


def _estimate_nusd(estimate: StoredEstimate) -> tuple[int, int, int]:
    """(min, max, input tokens) of an estimate for the batch's counters (0 when unknown)."""
    cost = estimate.cost_usd
    low = to_nano(Decimal(format_usd(cost.min))) if cost is not None else 0
    high = to_nano(Decimal(format_usd(cost.max)), up=True) if cost is not None else 0
    return low, high, estimate.input_tokens or 0


class _NotHeld(Exception):
    """The page's reservation did not fit the budget (its transaction is rolled back)."""

    def __init__(self, needed_nusd: int) -> None:
        super().__init__(needed_nusd)
        self.needed_nusd = needed_nusd


def _check_active(
    session: Session, resources: ApiResources, tenant: str, adding: int, done: int
) -> None:
    """429 when the new jobs would take the tenant past its unfinished jobs' limit."""
    limit = resources.settings.max_active_jobs_per_tenant
    active = count_active(session, tenant)
    if active + adding > limit:
        raise ApiError(
            "too_many_active_jobs",
            f"{active} of your jobs are queued or running and re-running {adding} more would "
            f"pass the limit of {limit}; {done} items were re-run by this call. Wait for some "
            "to finish, then ask again: items already re-run are not re-run twice.",
            headers={"Retry-After": "10"},
        )


def rerun(
    body: RerunRequest, caller: Caller, batch_id: str, resources: ApiResources
) -> RerunResult:
    """Give each matching item a new job; answer how many and the batch. Blocking."""
    tenant = caller.tenant
    with resources.sessions() as session:
        batch = get_batch(session, tenant=tenant, batch_id=batch_id)
        if batch is None:
            raise batch_not_found(batch_id)
        if batch.state not in _RERUNNABLE:
            raise batch_refused(batch_id, batch.state)
        capped = has_caps(session, tenant)
    _check_overrides(body, batch, resources)
    planner = _Planner(body, resources, capped)
    planner.priority = batch.priority  # re-run jobs wait at the batch's priority
    done, after = 0, 0
    while True:
        try:
            page = _rerun_page(
                body, resources, planner, tenant=tenant, batch_id=batch_id, after=after, done=done
            )
        except _NotHeld as exc:
            with resources.sessions() as session:
                raise budget_refusal(session, tenant, exc.needed_nusd) from exc
        if page is None:
            break
        count, after = page
        done += count
    with resources.sessions() as session:
        batch = get_batch(session, tenant=tenant, batch_id=batch_id)
        if batch is None:  # batches are not deleted; only a broken database gets here
            raise batch_not_found(batch_id)
        public = batch_public(session, batch, resources.settings, with_progress=True)
    return RerunResult(rerun=done, batch=public)


def _check_overrides(body: RerunRequest, batch: Batch, resources: ApiResources) -> None:
    """422 for a model or options no item could run with, whether or not an item
    qualifies (the same body gets the same answer): checked on the batch's defaults."""
    if body.model is None and body.options is None:
        return
    raw = RawJob(
        task=batch.task, prompt=batch.prompt, model=body.model or batch.model,
        labels=list(batch.labels) if batch.labels is not None else None,
        options={**batch.options, **(body.options or {})}, schema=batch.response_schema,
    )  # fmt: skip
    check_item_fields(raw, resources)


def _rerun_page(
    body: RerunRequest,
    resources: ApiResources,
    planner: _Planner,
    *,
    tenant: str,
    batch_id: str,
    after: int,
    done: int,
) -> tuple[int, int] | None:
    """Re-run one page of items in one transaction, then send the new jobs; (items re-run,
    the last item id) or None when no item is left."""
    with resources.sessions.begin() as session:
        refused = lock_for_write(session, tenant=tenant, batch_id=batch_id, allow=_RERUNNABLE)
        if refused is not None:
            raise batch_refused(batch_id, refused)
        sources = rerun_sources(
            session,
            batch_id,
            statuses=list(body.statuses),
            error_codes=body.error_codes,
            after_id=after,
            limit=PAGE,
        )
        if not sources:
            return None
        _check_active(session, resources, tenant, len(sources), done)
        rows = replace_jobs(
            session, resources, planner, tenant=tenant, batch_id=batch_id, sources=sources
        )
    count_new_rows(rows, source="rerun")
    send_after_commit(resources, to_send(rows))
    return len(rows), sources[-1].item_id


def replace_jobs(
    session: Session,
    resources: ApiResources,
    planner: _Planner,
    *,
    tenant: str,
    batch_id: str,
    sources: Sequence[RerunSource],
) -> list[NewJobRow]:
    """Give each item of ``sources`` a new job, in the caller's transaction (begun by
    lock_for_write on the batch): plan, hold the budget (_NotHeld rolls it back), insert,
    point the items at them and move the batch's counters. The one path of a batch re-run
    and of a retry of an item's job (:func:`retry_item`). The caller sends the rows after
    its commit (send_after_commit)."""
    planned, needed, rows = _plan_page(session, sources, tenant, resources, planner)
    if needed and not reserve(session, tenant=tenant, amount_nusd=needed):
        raise _NotHeld(needed)  # rolls the page back
    insert_jobs(session, rows)
    moves = [(src.item_id, row.id) for src, row in zip(sources, rows, strict=True)]
    repoint_items(session, moves)
    # The counters hold the latest jobs' estimates: the new ones replace the old ones,
    # whose actual cost moves to prior_cost (whole_estimate adds it back, exact).
    new = [_estimate_nusd(job.estimate) for job in planned]
    old = [_estimate_nusd(src.estimate) for src in sources if src.estimate is not None]
    add_counts(
        session,
        batch_id,
        est_min_nusd=sum(e[0] for e in new) - sum(e[0] for e in old),
        est_max_nusd=sum(e[1] for e in new) - sum(e[1] for e in old),
        est_tokens=sum(e[2] for e in new) - sum(e[2] for e in old),
        prior_cost_nusd=sum(src.cost_nusd for src in sources),
        prior_tokens=sum(src.total_tokens for src in sources),
    )
    return rows


def _plan_page(
    session: Session,
    sources: Sequence[RerunSource],
    tenant: str,
    resources: ApiResources,
    planner: _Planner,
) -> tuple[list[PlannedJob], int, list[NewJobRow]]:
    """The page's new jobs: planned, the reservation they need, and their rows."""
    old_ids = [src.job_id for src in sources]
    old = rerun_fields(session, old_ids)
    inputs = job_inputs_of(session, old_ids)
    planned = [planner.plan(old[src.job_id], inputs.get(src.job_id, [])) for src in sources]
    wanted = {job.cache_key for job in planned if job.options.cache}
    cached = find_cached_many(session, tenant=tenant, cache_keys=wanted) if wanted else {}
    rows, needed = job_rows(
        planned, tenant=tenant, cached=cached, capped=planner.capped, priority=planner.priority
    )
    return planned, needed, rows


class ItemReplacedError(Exception):
    """The job retried is no longer its item's latest: a concurrent re-run replaced it."""


def retry_item(
    source: Job,
    batch_id: str,
    caller: Caller,
    resources: ApiResources,
    idempotency: tuple[str, str] | None,
) -> tuple[JobPublic, bool]:
    """Retry ``source``, the latest job of an item of batch ``batch_id``, as a re-run of
    that one item: the new job joins the batch. A retry's rules stay: ``source``'s
    priority, no cached answer when ``source`` succeeded, the budget held, ``idempotency``
    (key, request hash) bound to the new job. Returns the job and whether it is a replay;
    raises ItemReplacedError when a concurrent re-run replaced ``source`` first. Blocking."""
    tenant = caller.tenant
    if idempotency is not None:
        earlier = replay(caller, resources, *idempotency)  # 422 for a key used elsewhere
        if earlier is not None:
            return _in_its_batch(earlier, resources), True
    with resources.sessions() as session:
        capped = has_caps(session, tenant)
    # A succeeded job's result is in the cache: a retry that copied it would change nothing.
    changes = {"cache": False} if source.status == JobStatus.SUCCEEDED else None
    planner = _Planner(RerunRequest(options=changes), resources, capped)
    planner.priority = source.priority  # a retry waits at the priority of the job it retries
    try:
        with resources.sessions.begin() as session:
            refused = lock_for_write(session, tenant=tenant, batch_id=batch_id, allow=_RERUNNABLE)
            if refused is not None:
                raise batch_refused(batch_id, refused)
            sources = rerun_sources(
                session, batch_id, statuses=list(TERMINAL_STATUSES), error_codes=None,
                after_id=0, limit=1, job_id=source.id,
            )  # fmt: skip
            if not sources:
                raise ItemReplacedError(source.id)  # after the lock: see the replay below
            (row,) = replace_jobs(
                session, resources, planner, tenant=tenant, batch_id=batch_id, sources=sources
            )
            if idempotency is not None:
                remember(
                    session, tenant=tenant, key=idempotency[0], request_hash=idempotency[1],
                    job_id=row.id, ttl_s=resources.settings.idempotency_ttl_s,
                )  # fmt: skip
    except _NotHeld as exc:
        with resources.sessions() as session:
            raise budget_refusal(session, tenant, exc.needed_nusd) from exc
    except ItemReplacedError:
        # The same retry sent twice at once: the first took the batch lock, replaced the job
        # and stored the key before this one got the lock. Answer with its job, not a 409.
        earlier = replay(caller, resources, *idempotency) if idempotency is not None else None
        if earlier is None:
            raise
        return _in_its_batch(earlier, resources), True
    except IntegrityError:
        # Only the idempotency key can collide: a concurrent request with it won the race.
        earlier = replay(caller, resources, *idempotency) if idempotency is not None else None
        if earlier is None:
            raise
        return _in_its_batch(earlier, resources), True
    count_new_rows([row], source="rerun")
    send_after_commit(resources, to_send([row]))
    with resources.sessions() as session:
        job = get_job(session, tenant=tenant, job_id=row.id)
        if job is None:  # only retention racing the answer gets here
            raise job_not_found(row.id)
        return JobPublic.of(job, BatchRef(batch_id, sources[0].key)), False


def _in_its_batch(job: JobPublic, resources: ApiResources) -> JobPublic:
    """``job`` (a replay's answer) with the batch item it is the latest job of."""
    with resources.sessions() as session:
        ref = batch_refs(session, [job.id]).get(job.id)
    if ref is None:
        return job
    return job.model_copy(update={"batch_id": ref.batch_id, "batch_key": ref.key})
