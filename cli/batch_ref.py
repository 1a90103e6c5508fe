"""How a `visionq batch` command names a batch: by its id or by its name (the CLI asks
GET /v1/batches?name= for a name)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer

from visionq.cli.common import die
from visionq.client import Batch, VisionqClient

BatchRef = Annotated[str, typer.Argument(metavar="NAME|ID", help="The batch's name or id.")]


def resolve(client: VisionqClient, ref: str) -> Batch:
    """The batch ``ref`` names: an id (a UUID), else a name (die if there is none)."""
    if _is_uuid(ref):
        return client.batches.get(ref)
    found = client.batches.find(ref)
    if found is None:
        die(f"no batch named {ref!r} for your tenant; list them: visionq batch list")
    return client.batches.get(found.id)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def dump_batch(batch: Batch) -> dict[str, Any]:
    """A batch as the JSON the --json option prints."""
    return batch.model_dump(mode="json", by_alias=True)
