"""Batches through the HTTP API: ``VisionqClient(...).batches`` (HTTP only, like the rest of
the client: no server code imported)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from visionq.client.api import VisionqClient
from visionq.client.batch_models import (
    Batch,
    BatchPage,
    ItemImage,
    ItemPage,
    ItemsAdded,
    Lookup,
    NewItem,
    RerunResult,
    Sha256Ref,
)
from visionq.client.inputs import is_url, text_list

EXPORT_FORMATS = ("jsonl", "csv")


class BatchClient:
    """The batch routes (/v1/batches...). Get it as ``client.batches``."""

    def __init__(self, client: VisionqClient) -> None:
        self._client = client

    def create(
        self,
        name: str,
        *,
        task: str,
        prompt: str | None = None,
        labels: str | Sequence[str] | None = None,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        schema: dict[str, Any] | None = None,
        expected_items: int | None = None,
        webhook_url: str | None = None,
        priority: int | None = None,
    ) -> Batch:
        """Create batch ``name`` with its items' defaults; if a batch of that name exists
        with the same defaults, that batch (so a second run resumes it); with other
        defaults, VisionqError 409 batch_name_taken. ``expected_items`` (how many items
        you mean to add) lets the whole-batch estimate be extrapolated before they are.
        ``webhook_url``: where batch.completed is POSTed (signed with the secret of
        ``webhooks.callbacks()``); part of the defaults a resumed create must repeat.
        ``priority``: 0..9, 9 first, the order of its jobs among your own waiting jobs
        (None: the server's default); also part of the defaults."""
        body: dict[str, Any] = {"name": name, "task": task}
        fields = {"prompt": prompt, "labels": text_list("labels", labels), "model": model,
                  "options": options or None, "schema": schema,
                  "expected_items": expected_items, "webhook_url": webhook_url,
                  "priority": priority}  # fmt: skip
        body.update({key: value for key, value in fields.items() if value is not None})
        return Batch.model_validate(self._client.request("POST", "/v1/batches", json=body).json())

    def get(self, batch_id: str) -> Batch:
        """One batch by id, with its progress (counts, tokens, cost, estimate, ETA)."""
        return Batch.model_validate(self._client.request("GET", f"/v1/batches/{batch_id}").json())

    def find(self, name: str) -> Batch | None:
        """The batch named ``name`` (without progress), or None."""
        page = self.list(name=name, limit=1)
        return page.batches[0] if page.batches else None

    def list(
        self,
        *,
        state: str | None = None,
        name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> BatchPage:
        """One page of batches, newest first (without progress)."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("state", state), ("name", name), ("cursor", cursor)):
            if value:
                params[key] = value
        response = self._client.request("GET", "/v1/batches", params=params)
        return BatchPage.model_validate(response.json())

    def lookup(
        self,
        batch_id: str,
        *,
        keys: Sequence[str] = (),
        sha256s: Sequence[str] = (),
        retries: int = 8,
    ) -> Lookup:
        """Which of ``keys`` the batch has (with their job ids), and which of ``sha256s``
        are images the tenant stored (send those as Sha256Ref instead of their bytes).
        A read: transient errors are retried up to ``retries`` times, as add_items does."""
        body = {"keys": list(keys), "sha256s": list(sha256s)}
        response = self._client.post_retried(f"/v1/batches/{batch_id}/lookup", retries, json=body)
        return Lookup.model_validate(response.json())

    def add_items(self, batch_id: str, items: Sequence[NewItem], *, retries: int = 8) -> ItemsAdded:
        """Add ``items`` in one call; one outcome per item (created, exists, or rejected
        with the reason a single submit would give).

        Images given as paths or bytes are sent as multipart parts (one part per distinct
        path or bytes object, however many items use it); URLs and Sha256Refs as
        references. Transient errors (429 after its Retry-After, 502-504, unreachable) are
        retried up to ``retries`` times: safe, since a key already added answers "exists".
        """
        body = items_request(items)
        response = self._client.post_retried(f"/v1/batches/{batch_id}/items", retries, **body)
        return ItemsAdded.model_validate(response.json())

    def items(
        self,
        batch_id: str,
        *,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 1000,
    ) -> ItemPage:
        """One page of the batch's items, in the order they were added."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        response = self._client.request("GET", f"/v1/batches/{batch_id}/items", params=params)
        return ItemPage.model_validate(response.json())

    def close(self, batch_id: str) -> Batch:
        """No more items may be added (its items keep running; re-runs stay possible)."""
        return self._post_batch(f"/v1/batches/{batch_id}/close")

    def cancel(self, batch_id: str) -> Batch:
        """Cancel the batch: its queued items never run (running ones finish)."""
        return self._post_batch(f"/v1/batches/{batch_id}/cancel")

    def rerun(
        self,
        batch_id: str,
        *,
        statuses: Sequence[str] = ("failed",),
        error_codes: Sequence[str] | None = None,
        model: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> RerunResult:
        """New jobs for the items whose latest job ended with one of ``statuses`` (and,
        if given, one of ``error_codes``), on ``model`` and with ``options`` merged over
        each old job's if given. The old jobs stay; each item points at its new job."""
        body: dict[str, Any] = {"statuses": list(statuses)}
        if error_codes:
            body["error_codes"] = list(error_codes)
        if model:
            body["model"] = model
        if options:
            body["options"] = options
        response = self._client.request("POST", f"/v1/batches/{batch_id}/rerun", json=body)
        return RerunResult.model_validate(response.json())

    def export(
        self, batch_id: str, *, fmt: str = "jsonl", status: str | None = None
    ) -> Iterator[bytes]:
        """Every item's result, streamed as JSON Lines or CSV (chunks of bytes as they
        arrive: constant memory whatever the batch's size). The request is sent when the
        iteration starts; the API's refusal (404, 422) is a VisionqError then."""
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
        params = {"format": fmt} | ({"status": status} if status else {})
        with self._client.stream("GET", f"/v1/batches/{batch_id}/results", params=params) as r:
            yield from r.iter_bytes()

    def _post_batch(self, path: str) -> Batch:
        return Batch.model_validate(self._client.request("POST", path).json())


def items_request(items: Sequence[NewItem]) -> dict[str, Any]:
    """The keyword arguments of the httpx request adding ``items``: multipart when an image
    is a path or bytes (its ``items`` field holds the JSON document, each image refers to
    its part by index), else JSON. A part is named after its file, or, for bytes, after the
    key of the first item using it."""
    parts: list[tuple[str, tuple[str, bytes, str]]] = []
    # One part per distinct path or bytes object: an image two items share is sent once.
    part_of: dict[object, int] = {}

    def ref(image: ItemImage, name: str) -> dict[str, Any]:
        if isinstance(image, Sha256Ref):
            return {"sha256": image.sha256}
        if isinstance(image, str) and is_url(image):
            return {"url": image}
        if not isinstance(image, str | Path | bytes):
            raise TypeError(
                "an image is a path, an http(s) URL, bytes or a Sha256Ref, "
                f"not {type(image).__name__}"
            )
        identity: object = Path(image) if isinstance(image, str | Path) else id(image)
        if identity not in part_of:
            part_of[identity] = len(parts)
            data = image if isinstance(image, bytes) else Path(image).read_bytes()
            name = name if isinstance(image, bytes) else Path(image).name
            parts.append(("image", (name, data, "application/octet-stream")))
        return {"part": part_of[identity]}

    document = {"items": [_item_body(item, ref) for item in items]}
    if not parts:
        return {"json": document}
    return {"data": {"items": json.dumps(document)}, "files": parts}


def _item_body(item: NewItem, ref: Any) -> dict[str, Any]:
    if not item.images:
        raise ValueError(f"item {item.key!r} has no image")
    body: dict[str, Any] = dict(item.overrides)
    body["key"] = item.key
    # The API names an image by its part's file name in a rejection ("Image 'x.png': ..."):
    # bytes are named after the item's key (its last path segment), numbered after the first.
    stem = item.key.rsplit("/", 1)[-1] or item.key
    names = [stem if n == 0 else f"{stem} #{n + 1}" for n in range(len(item.images))]
    body["images"] = [ref(image, name) for image, name in zip(item.images, names, strict=True)]
    return body
