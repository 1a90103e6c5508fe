"""Creating a batch (idempotent by name) and checking fields every item of a batch would run
with: the work behind POST /v1/batches and the up-front check of a re-run's overrides."""

from __future__ import annotations

import hashlib
import json

from visionq.api.batch_schemas import BatchCreate
from visionq.api.deps import ApiResources, Caller
from visionq.api.errors import ApiError
from visionq.api.job_checks import admit_fields
from visionq.api.rawjob import RawJob
from visionq.api.webhook_check import checked_url
from visionq.models import batches as store
from visionq.models.batches import BatchNameTakenError
from visionq.models.tables import Batch
from visionq.models.webhook_endpoints import callbacks_endpoint
from visionq.vision.model_fit import choose_model
from visionq.vision.task_registry import TASKS
from visionq.vision.tasks import JobSpecError, TaskKind

# Stand-ins for fields each item may give itself, so that the rest of the defaults is
# checked (the items' own fields are checked when they are added).
_PROMPT_STAND_IN = "a question each item gives"
_LABELS_STAND_IN = ["first label", "second label"]


def defaults_hash(body: BatchCreate) -> str:
    """sha256 of the canonical defaults: the body without its name and expected_items (and
    without webhook_url when not given, so batches made before it existed still match)."""
    excluded = {"name", "expected_items"} | ({"webhook_url"} if body.webhook_url is None else set())
    excluded |= {"priority"} if body.priority is None else set()  # the same
    fields = body.model_dump(mode="json", by_alias=True, exclude=excluded)
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_item_fields(raw: RawJob, resources: ApiResources) -> None:
    """422 for fields no item could run with: an unknown task or model, a bad option or
    schema. A prompt or labels the task needs may come with each item instead."""
    images = 1
    try:
        spec = TASKS[TaskKind((raw.task or "").strip().lower())]
    except ValueError:
        spec = None  # admit_fields names the task problem
    if spec is not None:
        images = spec.min_images
        if spec.prompt_needs is not None and not (raw.prompt and raw.prompt.strip()):
            raw.prompt = _PROMPT_STAND_IN
        if spec.takes_labels and raw.labels is None:
            raw.labels = list(_LABELS_STAND_IN)
    admit_fields(raw, images, resources.settings, resources.costs.catalogue)


def check_defaults(body: BatchCreate, resources: ApiResources) -> None:
    """check_item_fields for a create's defaults."""
    raw = RawJob(
        task=body.task, prompt=body.prompt, model=body.model, labels=body.labels,
        options=dict(body.options), schema=body.schema_,
    )  # fmt: skip
    check_item_fields(raw, resources)


def create(body: BatchCreate, caller: Caller, resources: ApiResources) -> tuple[Batch, bool]:
    """The caller's batch ``body.name``: created (False), or the existing one with equal
    defaults (True); 409 batch_name_taken when its defaults differ. Blocking."""
    check_defaults(body, resources)
    if body.webhook_url is not None:
        body.webhook_url = checked_url(body.webhook_url, resources.settings, field="webhook_url")
    wanted = defaults_hash(body)
    tenant = caller.tenant
    # Read first, then a write transaction whose first statement is the INSERT (SQLite).
    with resources.sessions() as session:
        found = store.find_batch(session, tenant=tenant, name=body.name)
    if found is None:
        try:
            with resources.sessions.begin() as session:
                batch = store.create_batch(
                    session, tenant=tenant, name=body.name, task=body.task, model=body.model,
                    prompt=body.prompt, labels=body.labels, options=dict(body.options),
                    response_schema=body.schema_, defaults_hash=wanted,
                    expected_items=body.expected_items,
                )  # fmt: skip
                if body.webhook_url is not None:
                    # The callbacks endpoint signs the batch's event: made with the batch.
                    batch.callback_url = body.webhook_url
                    session.flush()
                    callbacks_endpoint(session, tenant)
                batch.priority = (
                    resources.settings.default_priority if body.priority is None else body.priority
                )
                session.flush()
                session.expunge(batch)
            return batch, False
        except BatchNameTakenError:
            # A concurrent create of the same name won; its row, read again (the failed
            # transaction's rollback expired what it had loaded).
            with resources.sessions() as session:
                found = store.find_batch(session, tenant=tenant, name=body.name)
            if found is None:  # removed by gc in between (it was empty): try again
                raise ApiError(
                    "unavailable",
                    "The batch was being created and removed at once; create it again.",
                    headers={"Retry-After": "1"},
                ) from None
    if found.defaults_hash != wanted:
        raise ApiError(
            "batch_name_taken",
            f"A batch named {body.name!r} exists (id {found.id}) with other defaults; create "
            "it with the same task, prompt, model, labels, options, schema, webhook_url and "
            "priority to resume it, or use another name.",
        )
    if body.expected_items is not None and body.expected_items != found.expected_items:
        # A resumed run counts its inputs again: the estimate follows the new count.
        with resources.sessions.begin() as session:
            store.set_expected_items(session, found.id, body.expected_items)
        found.expected_items = body.expected_items
    return found, True


def model_of(batch: Batch, resources: ApiResources) -> str | None:
    """The model the batch's items run on by default (for its quota), None if unknown."""
    try:
        choice = choose_model(
            resources.costs.catalogue,
            batch.model,
            TaskKind(batch.task),
            configured_default=resources.settings.default_model or None,
            allow_unknown=True,
        )
    except (JobSpecError, ValueError):
        return batch.model
    return choice.model
