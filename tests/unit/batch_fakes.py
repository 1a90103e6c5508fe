"""A fake batch API behind httpx.MockTransport: the real client and CLI talk to it in-process.

It keeps batches, items and the images it received (by sha256), answers the routes
`visionq batch` uses, and records every request so tests can count uploads. Also the
fixtures and the folder of photos the `visionq batch run` tests share.
"""

from __future__ import annotations

import hashlib
import json
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.cli_fakes import png_file
from visionq.client import VisionqClient

NOW = "2026-12-05T00:00:00Z"


@dataclass
class FakeItem:
    key: str
    job_id: str
    images: list[str]  # sha256s
    fields: dict[str, Any]
    status: str = "queued"
    error_code: str | None = None


@dataclass
class FakeBatch:
    id: str
    name: str
    defaults: dict[str, Any]
    expected_items: int | None
    state: str = "open"
    items: dict[str, FakeItem] = field(default_factory=dict)
    received: int = 0
    referenced: int = 0


def multipart(request: httpx.Request) -> tuple[dict[str, Any], list[bytes]]:
    """The ``items`` document and each image part's bytes, in order."""
    content_type = request.headers["content-type"]
    boundary = content_type.split("boundary=")[1].encode()
    document: dict[str, Any] = {}
    images: list[bytes] = []
    for chunk in request.content.split(b"--" + boundary)[1:-1]:
        head, _, body = chunk[2:-2].partition(b"\r\n\r\n")
        if b'name="items"' in head:
            document = json.loads(body)
        else:
            images.append(body)
    return document, images


class FakeBatchApi:
    """The batch routes, in memory. ``status_on_create``: the status a new item's job gets
    (succeeded: a --wait ends at once). ``reject``: keys refused with corrupt_image.
    ``on_add``: called before each add is answered (a test interrupts the run there)."""

    def __init__(self) -> None:
        self.batches: dict[str, FakeBatch] = {}
        self.stored: set[str] = set()  # every image sha256 this tenant has
        self.requests: list[tuple[str, str]] = []
        self.add_calls: list[dict[str, Any]] = []
        self.uploaded: list[str] = []  # sha256 of every image part received
        self.status_on_create = "succeeded"
        self.error_code_on_create: str | None = None  # a failed item's code (None: "x")
        self.reject: set[str] = set()
        self.on_add: Callable[[], None] | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        parts = request.url.path.strip("/").split("/")[2:]  # after v1/batches
        if not parts:
            if request.method == "POST":
                return self._create(json.loads(request.content))
            return self._list(request)
        batch = self.batches.get(parts[0])
        if batch is None:
            return _error(404, "batch_not_found", f"No batch {parts[0]} for this API key.")
        action = parts[1] if len(parts) > 1 else ""
        handlers: dict[str, Callable[[FakeBatch, httpx.Request], httpx.Response]] = {
            "": lambda b, _: httpx.Response(200, json=self.public(b, progress=True)),
            "lookup": self._lookup,
            "items": self._items,
            "close": lambda b, _: self._set_state(b, "closed"),
            "cancel": lambda b, _: self._set_state(b, "cancelled"),
            "rerun": self._rerun,
            "results": self._results,
        }
        return handlers[action](batch, request)

    def _create(self, body: dict[str, Any]) -> httpx.Response:
        name = body.pop("name")
        expected = body.pop("expected_items", None)
        for batch in self.batches.values():
            if batch.name == name:
                if batch.defaults != body:
                    return _error(409, "batch_name_taken", f"Batch {name} exists ({batch.id}).")
                return httpx.Response(200, json=self.public(batch))
        batch = FakeBatch(str(uuid.uuid4()), name, body, expected)
        self.batches[batch.id] = batch
        return httpx.Response(201, json=self.public(batch))

    def _list(self, request: httpx.Request) -> httpx.Response:
        name = request.url.params.get("name")
        found = [b for b in self.batches.values() if name is None or b.name == name]
        page = {"batches": [self.public(b) for b in reversed(found)], "next_cursor": None}
        return httpx.Response(200, json=page)

    def _lookup(self, batch: FakeBatch, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        existing = {k: batch.items[k].job_id for k in body["keys"] if k in batch.items}
        stored = [sha for sha in body["sha256s"] if sha in self.stored]
        return httpx.Response(200, json={"existing": existing, "stored_sha256s": stored})

    def _items(self, batch: FakeBatch, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            status = request.url.params.get("status")
            start = int(request.url.params.get("cursor", "0"))
            limit = int(request.url.params.get("limit", "1000"))
            found = [item for item in batch.items.values() if status in (None, item.status)]
            page = found[start : start + limit]
            more = str(start + limit) if start + limit < len(found) else None
            items = [_item_public(item) for item in page]
            return httpx.Response(200, json={"items": items, "next_cursor": more})
        if batch.state != "open":
            return _error(409, f"batch_{batch.state}", f"The batch is {batch.state}.")
        if request.headers["content-type"].startswith("multipart/"):
            document, parts = multipart(request)
        else:
            document, parts = json.loads(request.content), []
        part_shas = [hashlib.sha256(data).hexdigest() for data in parts]
        self.uploaded += part_shas
        self.add_calls.append(document)
        if self.on_add is not None:
            self.on_add()
        outcomes = [self._add_one(batch, item, part_shas) for item in document["items"]]
        counts = {kind: sum(1 for o in outcomes if o["outcome"] == kind)
                  for kind in ("created", "exists", "rejected")}  # fmt: skip
        body = {"items": outcomes, "created": counts["created"], "existing": counts["exists"],
                "rejected": counts["rejected"]}  # fmt: skip
        return httpx.Response(200, json=body)

    def _add_one(self, batch: FakeBatch, item: dict[str, Any], shas: list[str]) -> dict[str, Any]:
        key = item["key"]
        if key in batch.items:
            found = batch.items[key]
            return {"key": key, "outcome": "exists", "job_id": found.job_id, "status": found.status}
        if key in self.reject:
            error = {"code": "corrupt_image", "message": "Image 'x': cannot be read."}
            return {"key": key, "outcome": "rejected", "error": error}
        images = []
        for ref in item["images"]:
            if "part" in ref:
                images.append(shas[ref["part"]])
                batch.received += 1
            elif "sha256" in ref:
                images.append(ref["sha256"])
                batch.referenced += 1
            else:
                images.append(hashlib.sha256(ref["url"].encode()).hexdigest())
                batch.received += 1
        self.stored.update(images)
        fields = {k: v for k, v in item.items() if k not in ("key", "images")}
        new = FakeItem(key, str(uuid.uuid4()), images, fields, status=self.status_on_create)
        if new.status == "failed":
            new.error_code = self.error_code_on_create or "x"
        if new.status == "cancelled":
            new.error_code = "cancelled"

        batch.items[key] = new
        return {"key": key, "outcome": "created", "job_id": new.job_id, "status": new.status,
                "images": images}  # fmt: skip

    def _set_state(self, batch: FakeBatch, state: str) -> httpx.Response:
        batch.state = state
        if state == "cancelled":
            for item in batch.items.values():
                if item.status == "queued":
                    item.status = "cancelled"
        return httpx.Response(200, json=self.public(batch))

    def _rerun(self, batch: FakeBatch, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        count = 0
        for item in batch.items.values():
            codes = body.get("error_codes")
            if item.status in body["statuses"] and (not codes or item.error_code in codes):
                item.status, item.error_code, item.job_id = "queued", None, str(uuid.uuid4())
                count += 1
        return httpx.Response(202, json={"rerun": count, "batch": self.public(batch)})

    def _results(self, batch: FakeBatch, request: httpx.Request) -> httpx.Response:
        lines = [json.dumps(export_record(item)) + "\n" for item in batch.items.values()]
        return httpx.Response(200, content="".join(lines).encode())

    def public(self, batch: FakeBatch, *, progress: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": batch.id, "name": batch.name, "state": batch.state,
            "task": batch.defaults["task"], "model": batch.defaults.get("model"),
            "prompt": batch.defaults.get("prompt"), "labels": batch.defaults.get("labels"),
            "options": batch.defaults.get("options", {}), "schema": batch.defaults.get("schema"),
            "expected_items": batch.expected_items, "created_at": NOW, "closed_at": None,
            "cancelled_at": None, "item_count": len(batch.items),
            "images_received": batch.received, "images_referenced": batch.referenced,
            "progress": None,
        }  # fmt: skip
        if progress:
            counts: dict[str, int] = {}
            for item in batch.items.values():
                counts[item.status] = counts.get(item.status, 0) + 1
            ended = sum(counts.get(s, 0) for s in ("succeeded", "failed", "cancelled", "expired"))
            body["progress"] = {
                "counts": counts, "items": len(batch.items), "expected_items": batch.expected_items,
                "done": ended, "tokens": {"prompt": 10 * ended, "candidates": 2 * ended,
                                          "thoughts": 0, "total": 12 * ended},
                "cost_usd": f"{0.0001 * ended:.4f}",
                "estimate_usd": {"min": "0.001", "max": "0.01"},
                "rate_per_s": None, "eta_s": None, "eta_at": None, "eta_basis": "none",
            }  # fmt: skip
        return body


def export_record(item: FakeItem) -> dict[str, Any]:
    """An item as the API's JSON Lines export has it."""
    succeeded = item.status == "succeeded"
    return {
        "key": item.key, "job_id": item.job_id, "status": item.status, "task": "caption",
        "model": "gemini-x", "result": {"text": f"a picture of {item.key}"} if succeeded else None,
        "error": None if succeeded else {"code": item.error_code or "x", "message": "failed"},
        "usage": {"prompt_tokens": 10, "candidates_tokens": 2, "thoughts_tokens": None,
                  "total_tokens": 12},
        "cost_usd": "0.000012345" if succeeded else None, "estimate_max_usd": "0.0001",
        "reruns": 0, "created_at": NOW, "finished_at": NOW if succeeded else None,
    }  # fmt: skip


def _item_public(item: FakeItem) -> dict[str, Any]:
    return {"key": item.key, "job_id": item.job_id, "status": item.status,
            "error_code": item.error_code, "reruns": 0}  # fmt: skip


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


def install_batch_api(monkeypatch: pytest.MonkeyPatch) -> FakeBatchApi:
    """Every user command's client talks to a new FakeBatchApi (returned), API key set."""
    api = FakeBatchApi()
    monkeypatch.setattr(
        "visionq.cli.common.VisionqClient",
        lambda url, key, **_: VisionqClient(url, key, transport=api.transport()),
    )
    monkeypatch.setenv("VISIONQ_API_KEY", "vq-test")
    return api


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeBatchApi:
    return install_batch_api(monkeypatch)


@pytest.fixture(autouse=True)
def ctrl_c_as_in_a_terminal() -> Iterator[None]:
    """Ctrl-C as a terminal delivers it: a shell that starts the run in the background
    without job control (`cmd &` in a script) makes SIGINT ignored, and Python keeps it so."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _photos(folder: Path, count: int, *, extra: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        sub = folder / ("sub" if index % 2 else "")
        sub.mkdir(exist_ok=True)
        png_file(sub / f"p{index:02}.png", size=(8 + index, 8))
    if extra:
        (folder / "notes.txt").write_text("not an image")
    return folder
