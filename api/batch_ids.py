"""A batch id from a path, and the answers for a batch that is missing or refuses the call:
one wording for every batch route."""

from __future__ import annotations

import uuid

from visionq.api.errors import ApiError

# The longest id an error message repeats (a path may hold anything).
_SHOWN = 64


def batch_not_found(batch_id: str) -> ApiError:
    """The 404 for a batch id the caller's tenant has no batch under."""
    shown = batch_id[:_SHOWN]
    return ApiError(
        "batch_not_found",
        f"No batch {shown!r} for this tenant; list yours with GET /v1/batches "
        "(visionq batch list).",
    )


def batch_id_of(value: str) -> str:
    """The batch id of a path, or 404: anything but a UUID names no batch (and never
    reaches the database: PostgreSQL refuses NUL characters, for one)."""
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise batch_not_found(value) from exc


def batch_refused(batch_id: str, state: str) -> ApiError:
    """The 404 or 409 for a batch found missing (``state`` "missing") or in ``state``:
    cancelled takes nothing more; closed takes no items (its failed items can be re-run)."""
    if state == "cancelled":
        return ApiError(
            "batch_cancelled",
            f"Batch {batch_id} is cancelled: it takes no more items and no re-runs. Create "
            "another batch (another name) for this work.",
        )
    if state == "closed":
        return ApiError(
            "batch_closed",
            f"Batch {batch_id} is closed: it takes no more items. Create another batch "
            "(another name) for new items; its failed items can still be re-run.",
        )
    return batch_not_found(batch_id)
