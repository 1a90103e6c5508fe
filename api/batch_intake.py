"""Adding items to a batch: a single submit's admission, in bulk.

Each item is a job as a single submit makes it (the same field and image checks, estimate,
budget hold, cache and stored row), plus its key in the batch. What a single submit pays
per job is paid here per call: authentication, throttle, counts, one transaction, one
INSERT of many rows, one producer. Items whose key the batch has already are answered from
one lookup, with no image work; images given by sha256 are neither decoded nor written.

A problem of one item (a field, an image) rejects that item with the code and message a
single submit would answer; a resource fault (the database, the blob store, the decode
memory budget) or the budget fails the whole call, and none of its items is stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from visionq.api.batch_body import RawItems, key_is_valid
from visionq.api.batch_ids import batch_not_found, batch_refused
from visionq.api.batch_images import ImageWork, store_images
from visionq.api.batch_schemas import (
    BatchItemIn,
    BatchLookup,
    BatchLookupResult,
    ItemOutcome,
    ItemsAdded,
)
from visionq.api.batch_store import PlannedJob, job_rows, send_after_commit, to_send
from visionq.api.budget_gate import budget_refusal, economy_and_estimate, unbounded_refusal
from visionq.api.deps import ApiResources, Caller
from visionq.api.errors import ApiError
from visionq.api.job_checks import AdmittedFields, admit_fields
from visionq.api.rawjob import RawJob
from visionq.api.schemas import ErrorDetail
from visionq.models.batches import (
    add_counts,
    existing_items,
    get_batch,
    insert_items,
    lock_for_write,
)
from visionq.models.batchjobs import (
    CachedAnswer,
    NewJobRow,
    find_cached_many,
    insert_jobs,
    job_inputs_of,
    job_statuses,
    stored_inputs,
)
from visionq.models.budgets import has_caps, reserve
from visionq.models.jobs import NewInput
from visionq.models.leases import count_active
from visionq.models.metrics import count_new_rows
from visionq.models.tables import Batch, JobStatus
from visionq.vision.batch_keys import MAX_ITEM_KEY_BYTES, key_bytes
from visionq.vision.costing import to_nano
from visionq.vision.estimate import StoredEstimate
from visionq.vision.tasks import JobOptions, cache_key

_HEX = frozenset("0123456789abcdef")


@dataclass
class _New:
    """A new item on its way: admitted fields, then stored images, then its plan."""

    item: BatchItemIn
    fields: AdmittedFields | None = None
    # The memo key of its fields (None: not memoized).
    memo: str | None = None
    inputs: list[NewInput] = field(default_factory=list)
    received: int = 0  # images sent as bytes (a part, base64 or a URL)
    referenced: int = 0  # images given by sha256
    plan: PlannedJob | None = None

    @property
    def key(self) -> str:
        return self.item.key


class _BudgetRefusedError(Exception):
    def __init__(self, needed_nusd: int) -> None:
        super().__init__(needed_nusd)
        self.needed_nusd = needed_nusd


def add_items(raw: RawItems, caller: Caller, batch_id: str, resources: ApiResources) -> ItemsAdded:
    """Add the items of one call to the caller's batch ``batch_id`` (see the module
    docstring): one outcome per item, in the order given.

    Blocking and CPU-bound (images checked in resources.intake_pool, database, Redis): run
    it in the thread pool, in one round trip.
    """
    rejected: dict[str, ErrorDetail] = {}
    # Reads first, in one short session (the write transaction comes last: on SQLite it
    # must start with a write).
    with resources.sessions() as session:
        batch = get_batch(session, tenant=caller.tenant, batch_id=batch_id)
        if batch is None:
            raise batch_not_found(batch_id)
        if batch.state != "open":
            raise batch_refused(batch_id, batch.state)
        existing = existing_items(session, batch_id, [item.key for item in raw.items])
        new = [_New(item) for item in raw.items if item.key not in existing]
        active = count_active(session, caller.tenant) if new else 0
        refs = {ref.sha256 for one in new for ref in one.item.images if ref.sha256}
        stored = stored_inputs(session, tenant=caller.tenant, sha256s=refs) if refs else {}
        capped = bool(new) and has_caps(session, caller.tenant)
    _check_active(active, len(new), resources)
    _admit_fields(new, batch, resources, rejected)
    admitted = [one for one in new if one.fields is not None]
    work = [ImageWork(one.item.images, _max_side(one)) for one in admitted]
    results = store_images(work, parts=raw.parts, stored=stored, resources=resources)
    for one, result in zip(admitted, results, strict=True):
        if result.error is not None:
            rejected[one.key] = ErrorDetail(code=result.error.code, message=result.error.message)
        one.inputs, one.received, one.referenced = result.inputs, result.received, result.referenced
    planned = [one for one in admitted if one.key not in rejected]
    _plan(planned, resources)
    cached = _cached(planned, caller, resources)
    for one in planned:
        assert one.plan is not None
        free = one.plan.options.cache and one.plan.cache_key in cached
        if capped and not free and one.plan.estimate.cost_usd is None:
            error = unbounded_refusal(one.plan.fields.model, one.plan.estimate)
            rejected[one.key] = ErrorDetail(code=error.code, message=error.message)
    ready = [one for one in planned if one.key not in rejected]
    raced, created = _insert(
        ready, batch_id=batch_id, caller=caller, capped=capped, cached=cached, resources=resources,
        priority=batch.priority,
    )  # fmt: skip
    existing.update(raced)
    count_new_rows(created.values(), source="batch_add")
    send_after_commit(resources, to_send(created.values()))
    return _answer(raw.items, existing, created, rejected, resources)


def _check_active(active: int, adding: int, resources: ApiResources) -> None:
    """429 when the new items would take the tenant past its unfinished-jobs limit."""
    limit = resources.settings.max_active_jobs_per_tenant
    if adding and active + adding > limit:
        raise ApiError(
            "too_many_active_jobs",
            f"{active} of your jobs are queued or running and this call adds {adding}; the "
            f"limit is {limit}. Wait for some to finish, then add the rest.",
            headers={"Retry-After": "10"},
        )


def _max_side(one: _New) -> int | None:
    return one.fields.options.max_side if one.fields is not None else None


def merged_job(batch: Batch, item: BatchItemIn) -> RawJob:
    """The item's job fields: its own, else the batch's defaults (options key by key)."""
    return RawJob(
        task=batch.task,
        prompt=item.prompt if item.prompt is not None else batch.prompt,
        model=item.model if item.model is not None else batch.model,
        labels=item.labels if item.labels is not None else batch.labels,
        options={**(batch.options or {}), **(item.options or {})},
        schema=item.schema_ if item.schema_ is not None else batch.response_schema,
    )


def _memo_key(raw: RawJob, images: int) -> str | None:
    """The canonical JSON of what admit_fields reads; None when it cannot be made."""
    try:
        return json.dumps(
            [raw.task, raw.prompt, raw.model, raw.labels, raw.options, raw.schema, images],
            sort_keys=True,
            separators=(",", ":"),
        )
    except (TypeError, ValueError, RecursionError):
        return None


def _admit_fields(
    new: list[_New], batch: Batch, resources: ApiResources, rejected: dict[str, ErrorDetail]
) -> None:
    """Admit each item's fields, once per distinct field set (most items share the batch's
    defaults, and admission parses the schema and checks the model)."""
    settings, catalogue = resources.settings, resources.costs.catalogue
    memo: dict[str, AdmittedFields | ApiError] = {}
    for one in new:
        raw = merged_job(batch, one.item)
        one.memo = _memo_key(raw, len(one.item.images))
        found = memo.get(one.memo) if one.memo is not None else None
        if found is None:
            try:
                found = admit_fields(raw, len(one.item.images), settings, catalogue)
            except ApiError as exc:
                found = exc
            if one.memo is not None:
                memo[one.memo] = found
        if isinstance(found, ApiError):
            rejected[one.key] = ErrorDetail(code=found.code, message=found.message)
        else:
            one.fields = found


def _plan(items: list[_New], resources: ApiResources) -> None:
    """Each item's options (economy applied), estimate and cache key; the estimate made
    once per field set and image sizes."""
    memo: dict[tuple[str, tuple[tuple[int, int], ...]], tuple[JobOptions, StoredEstimate]] = {}
    for one in items:
        assert one.fields is not None
        sizes = [(image.width, image.height) for image in one.inputs]
        memo_key = (one.memo, tuple(sizes)) if one.memo is not None else None
        found = memo.get(memo_key) if memo_key is not None else None
        if found is None:
            found = economy_and_estimate(one.fields, sizes, resources)
            if memo_key is not None:
                memo[memo_key] = found
        options, estimate = found
        fields = one.fields
        key = cache_key(
            image_sha256s=[image.sha256 for image in one.inputs], task=fields.task,
            prompt=fields.prompt, labels=fields.labels, schema=fields.schema,
            model=fields.model, options=options,
        )  # fmt: skip
        one.plan = PlannedJob(fields, options, estimate, one.inputs, key)


def _cached(items: list[_New], caller: Caller, resources: ApiResources) -> dict[str, CachedAnswer]:
    """The earlier answers the items may reuse (options.cache), by cache key."""
    keys = {one.plan.cache_key for one in items if one.plan is not None and one.plan.options.cache}
    if not keys:
        return {}
    with resources.sessions() as session:
        return find_cached_many(session, tenant=caller.tenant, cache_keys=keys)


def _insert(
    ready: list[_New],
    *,
    batch_id: str,
    caller: Caller,
    capped: bool,
    cached: dict[str, CachedAnswer],
    resources: ApiResources,
    priority: int,
) -> tuple[dict[str, str | None], dict[str, NewJobRow]]:
    """Store the ready items in ONE transaction: the batch locked first (concurrent adds to
    it wait here), keys added meanwhile by another call found again (they are answered as
    existing), the budget held for the sum (402 for the call), then one bulk INSERT.
    Returns the keys found added meanwhile, and the rows inserted by key."""
    if not ready:
        return {}, {}
    for attempt in (1, 2):
        try:
            with resources.sessions.begin() as session:
                state = lock_for_write(
                    session, tenant=caller.tenant, batch_id=batch_id, allow={"open"}
                )
                if state is not None:
                    raise batch_refused(batch_id, state)
                raced = existing_items(session, batch_id, [one.key for one in ready])
                todo = [one for one in ready if one.key not in raced]
                plans = [one.plan for one in todo if one.plan is not None]
                rows, needed = job_rows(plans, tenant=caller.tenant, cached=cached,
                                        capped=capped, priority=priority)  # fmt: skip
                paid = [row for row in rows if row.cached is None]
                if (
                    capped
                    and paid
                    and not reserve(session, tenant=caller.tenant, amount_nusd=needed)
                ):
                    raise _BudgetRefusedError(needed)
                insert_jobs(session, rows)
                insert_items(
                    session,
                    batch_id,
                    [(one.key, row.id) for one, row in zip(todo, rows, strict=True)],
                )
                add_counts(
                    session, batch_id, items=len(rows),
                    est_min_nusd=sum(_nusd(row, up=False) for row in paid),
                    est_max_nusd=sum(_nusd(row, up=True) for row in paid),
                    est_tokens=sum(row.estimate.input_tokens or 0 for row in paid if row.estimate),
                    received=sum(one.received for one in todo),
                    referenced=sum(one.referenced for one in todo),
                )  # fmt: skip
            return raced, {one.key: row for one, row in zip(todo, rows, strict=True)}
        except IntegrityError:
            # A key added by a concurrent call that the lock did not order before this one
            # (it should): once more, and its key is then found as existing.
            if attempt == 2:
                raise
        except _BudgetRefusedError as exc:
            with resources.sessions() as session:
                raise budget_refusal(session, caller.tenant, exc.needed_nusd) from None
    raise AssertionError("unreachable")


def _nusd(row: NewJobRow, *, up: bool) -> int:
    cost = row.estimate.cost_usd if row.estimate is not None else None
    if cost is None:
        return 0
    return to_nano(cost.max if up else cost.min, up=up)


def _answer(
    items: Sequence[BatchItemIn],
    existing: dict[str, str | None],
    created: dict[str, NewJobRow],
    rejected: dict[str, ErrorDetail],
    resources: ApiResources,
) -> ItemsAdded:
    """One outcome per item, in the order given; existing items with their job's status
    and images (one read for all of them)."""
    known = [job_id for key, job_id in existing.items() if job_id is not None]
    statuses: dict[str, str] = {}
    images: dict[str, list[NewInput]] = {}
    if known:
        with resources.sessions() as session:
            statuses = job_statuses(session, known)
            images = job_inputs_of(session, known)
    outcomes: list[ItemOutcome] = []
    for item in items:
        key = item.key
        if key in created:
            row = created[key]
            status = JobStatus.QUEUED if row.cached is None else JobStatus.SUCCEEDED
            shas = [image.sha256 for image in row.inputs]
            outcomes.append(
                ItemOutcome(key=key, outcome="created", job_id=row.id, status=status, images=shas)
            )
        elif key in existing:
            job_id = existing[key]
            found = statuses.get(job_id) if job_id is not None else None
            outcomes.append(
                ItemOutcome(
                    key=key, outcome="exists", job_id=job_id,
                    status=JobStatus(found) if found is not None else None,
                    images=[image.sha256 for image in images.get(job_id or "", [])],
                )
            )  # fmt: skip
        else:
            error = rejected.get(key) or ErrorDetail(code="invalid_request", message="Not added.")
            outcomes.append(ItemOutcome(key=key, outcome="rejected", error=error))
    counts = {
        kind: sum(1 for o in outcomes if o.outcome == kind)
        for kind in ("created", "exists", "rejected")
    }
    return ItemsAdded(
        items=outcomes,
        created=counts["created"],
        existing=counts["exists"],
        rejected=counts["rejected"],
    )


def lookup(
    body: BatchLookup, caller: Caller, batch_id: str, resources: ApiResources
) -> BatchLookupResult:
    """Which of ``body.keys`` the batch has (with their job ids), and which of
    ``body.sha256s`` are images of this tenant's jobs (sendable as sha256 refs)."""
    limit = resources.settings.batch_max_items_per_add
    if len(body.keys) > limit or len(body.sha256s) > limit:
        raise ApiError(
            "too_many_items",
            f"{len(body.keys)} keys and {len(body.sha256s)} sha256s; at most {limit} of each "
            "per call (VISIONQ_BATCH_MAX_ITEMS_PER_ADD).",
        )
    # Keys no item can have (and PostgreSQL could not compare: NUL) are simply not found.
    keys = [
        key
        for key in dict.fromkeys(body.keys)
        if key_is_valid(key) and key_bytes(key) <= MAX_ITEM_KEY_BYTES
    ]
    sha256s = [sha for sha in dict.fromkeys(body.sha256s) if _is_sha256(sha)]
    with resources.sessions() as session:
        if get_batch(session, tenant=caller.tenant, batch_id=batch_id) is None:
            raise batch_not_found(batch_id)
        existing = existing_items(session, batch_id, keys) if keys else {}
        stored = stored_inputs(session, tenant=caller.tenant, sha256s=sha256s) if sha256s else {}
    return BatchLookupResult(
        existing=existing, stored_sha256s=[sha for sha in sha256s if sha in stored]
    )


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and set(value) <= _HEX
