"""client.batches against a fake API (httpx.MockTransport): the bodies it sends, the answers
it reads, and the retries of an add."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from visionq.client import NewItem, Sha256Ref, VisionqClient, VisionqError
from visionq.client.batches import items_request

BATCH = {
    "id": "0b9c3a3e-6a51-4f43-9a57-6f0d1f0ad8c1", "name": "photos", "state": "open",
    "task": "caption", "model": None, "prompt": None, "labels": None, "options": {},
    "schema": None, "expected_items": 3, "created_at": "2026-12-05T00:00:00Z",
    "closed_at": None, "cancelled_at": None, "item_count": 0, "images_received": 0,
    "images_referenced": 0, "progress": None,
}  # fmt: skip
PROGRESS = {
    "counts": {"queued": 1, "running": 1, "succeeded": 2, "failed": 1},
    "items": 5, "expected_items": 10, "done": 3,
    "tokens": {"prompt": 10, "candidates": 5, "thoughts": 0, "total": 15},
    "cost_usd": "0.0123", "estimate_usd": {"min": "0.01", "max": "0.05"},
    "rate_per_s": 2.0, "eta_s": 1.0, "eta_at": "2026-12-05T00:00:01Z", "eta_basis": "measured",
}  # fmt: skip
Handler = Callable[[httpx.Request], httpx.Response]


def _client(handle: Handler) -> VisionqClient:
    return VisionqClient("http://api.test", "k", transport=httpx.MockTransport(handle))


def _added(keys: list[str]) -> dict[str, Any]:
    items = [{"key": key, "outcome": "created", "job_id": f"j-{key}", "status": "queued",
              "images": ["ab" * 32]} for key in keys]  # fmt: skip
    return {"items": items, "created": len(keys), "existing": 0, "rejected": 0}


def _multipart(request: httpx.Request) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """The ``items`` document and the (filename, bytes) of each image part, in order."""
    content_type = request.headers["content-type"]
    assert content_type.startswith("multipart/form-data")
    boundary = content_type.split("boundary=")[1].encode()
    document: dict[str, Any] = {}
    images: list[tuple[str, bytes]] = []
    for chunk in request.content.split(b"--" + boundary)[1:-1]:
        head, _, body = chunk.strip(b"\r\n").partition(b"\r\n\r\n")
        disposition = head.decode()
        if 'name="items"' in disposition:
            document = json.loads(body)
        else:
            assert 'name="image"' in disposition
            filename = disposition.split('filename="')[1].split('"')[0]
            images.append((filename, body))
    return document, images


def test_add_items_sends_multipart_with_one_part_per_distinct_image(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"file-bytes")
    shared = b"shared-bytes"
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=_added(["a", "b", "c", "dir/e.png", "d"]))

    items = [
        NewItem("a", [photo], {"prompt": "what is it?", "options": {"temperature": 0.2}}),
        NewItem("b", [shared]),
        NewItem("c", [shared, Sha256Ref("cd" * 32)]),
        NewItem("dir/e.png", [b"one", b"two"]),
        NewItem("d", ["https://example.test/x.jpg"]),
    ]
    with _client(handle) as client:
        added = client.batches.add_items(BATCH["id"], items)
    assert added.created == 5 and added.items[0].job_id == "j-a"
    (request,) = seen
    assert request.method == "POST" and request.url.path == f"/v1/batches/{BATCH['id']}/items"
    document, images = _multipart(request)
    assert images == [
        ("photo.png", b"file-bytes"), ("b", b"shared-bytes"), ("e.png", b"one"),
        ("e.png #2", b"two"),
    ]  # fmt: skip
    assert document == {
        "items": [
            {"key": "a", "images": [{"part": 0}], "prompt": "what is it?",
             "options": {"temperature": 0.2}},
            {"key": "b", "images": [{"part": 1}]},
            {"key": "c", "images": [{"part": 1}, {"sha256": "cd" * 32}]},
            {"key": "dir/e.png", "images": [{"part": 2}, {"part": 3}]},
            {"key": "d", "images": [{"url": "https://example.test/x.jpg"}]},
        ]
    }  # fmt: skip


def test_add_items_without_bytes_is_json() -> None:
    body = items_request([NewItem("a", [Sha256Ref("ab" * 32)]), NewItem("b", ["http://x.test"])])
    assert body == {
        "json": {
            "items": [
                {"key": "a", "images": [{"sha256": "ab" * 32}]},
                {"key": "b", "images": [{"url": "http://x.test"}]},
            ]
        }
    }


def test_an_item_without_images_or_with_a_bad_image_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="no image"):
        items_request([NewItem("a", [])])
    with pytest.raises(TypeError, match="not int"):
        items_request([NewItem("a", [3])])  # type: ignore[list-item]


def test_add_items_is_retried_on_rate_limits_and_outages() -> None:
    answers = [
        httpx.Response(429, json={"error": {"code": "rate_limited", "message": "slow"}},
                       headers={"Retry-After": "0"}),
        httpx.Response(503, json={"error": {"code": "unavailable", "message": "down"}},
                       headers={"Retry-After": "0"}),
        httpx.Response(200, json=_added(["a"])),
    ]  # fmt: skip
    bodies: list[bytes] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return answers.pop(0)

    with _client(handle) as client:
        added = client.batches.add_items(BATCH["id"], [NewItem("a", [b"png"])])
    assert added.created == 1
    # The same body each time: a key the server already added answers "exists".
    assert len(bodies) == 3 and len({len(body) for body in bodies}) == 1


@pytest.mark.parametrize("status", [402, 409, 413, 422])
def test_add_refusals_are_not_retried(status: int) -> None:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(status, json={"error": {"code": "nope", "message": "no"}})

    with _client(handle) as client, pytest.raises(VisionqError) as raised:
        client.batches.add_items(BATCH["id"], [NewItem("a", [b"png"])])
    assert raised.value.status == status and len(calls) == 1


def test_add_retries_are_bounded() -> None:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, json={"error": {"code": "unavailable", "message": "x"}},
                              headers={"Retry-After": "0"})  # fmt: skip

    with _client(handle) as client, pytest.raises(VisionqError, match="unavailable"):
        client.batches.add_items(BATCH["id"], [NewItem("a", [b"png"])], retries=2)
    assert len(calls) == 3


def test_create_sends_only_what_is_given_and_reads_the_batch() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=BATCH)

    with _client(handle) as client:
        batch = client.batches.create(
            "photos", task="classify", labels="cat, dog", options={"temperature": 0.1},
            expected_items=3,
        )  # fmt: skip
    assert batch.id == BATCH["id"] and batch.state == "open" and batch.progress is None
    assert json.loads(seen[0].content) == {
        "name": "photos", "task": "classify", "labels": ["cat", "dog"],
        "options": {"temperature": 0.1}, "expected_items": 3,
    }  # fmt: skip


def test_get_reads_progress_and_find_asks_by_name() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/batches":
            assert request.url.params["name"] == "photos"
            assert request.url.params["limit"] == "1"
            return httpx.Response(200, json={"batches": [BATCH], "next_cursor": None})
        return httpx.Response(200, json=BATCH | {"progress": PROGRESS, "new_field": 1})

    with _client(handle) as client:
        found = client.batches.find("photos")
        batch = client.batches.get(BATCH["id"])
    assert found is not None and found.id == BATCH["id"]
    assert batch.progress is not None
    assert str(batch.progress.cost_usd) == "0.0123" and batch.progress.unfinished == 2
    assert batch.progress.counts.expired == 0 and batch.progress.eta_basis == "measured"


def test_find_answers_none_for_an_unknown_name() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"batches": [], "next_cursor": None})

    with _client(handle) as client:
        assert client.batches.find("nope") is None


def test_lookup_items_rerun_close_cancel() -> None:
    seen: list[tuple[str, str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.path, body or dict(request.url.params)))
        path = request.url.path
        if path.endswith("/lookup"):
            return httpx.Response(200, json={"existing": {"a": "j1"}, "stored_sha256s": []})
        if path.endswith("/items"):
            page = {
                "items": [
                    {
                        "key": "a",
                        "job_id": "j1",
                        "status": "failed",
                        "error_code": "blocked",
                        "reruns": 0,
                    }
                ],
                "next_cursor": "c2",
            }
            return httpx.Response(200, json=page)  # fmt: skip
        if path.endswith("/rerun"):
            return httpx.Response(202, json={"rerun": 1, "batch": BATCH})
        states = {"close": "closed", "cancel": "cancelled"}
        return httpx.Response(200, json=BATCH | {"state": states[path.rsplit("/", 1)[1]]})

    batch_id = BATCH["id"]
    with _client(handle) as client:
        lookup = client.batches.lookup(batch_id, keys=["a", "b"], sha256s=["ab" * 32])
        page = client.batches.items(batch_id, status="failed", cursor="c1")
        rerun = client.batches.rerun(batch_id, error_codes=["blocked"], model="m2")
        closed = client.batches.close(batch_id)
        cancelled = client.batches.cancel(batch_id)
    assert lookup.existing == {"a": "j1"}
    assert page.items[0].error_code == "blocked" and page.next_cursor == "c2"
    assert rerun.rerun == 1 and closed.state == "closed" and cancelled.state == "cancelled"
    assert seen[0][2] == {"keys": ["a", "b"], "sha256s": ["ab" * 32]}
    assert seen[1][2] == {"limit": "1000", "status": "failed", "cursor": "c1"}
    assert seen[2][2] == {"statuses": ["failed"], "error_codes": ["blocked"], "model": "m2"}


def test_export_streams_and_raises_the_api_error() -> None:
    lines = b"".join(json.dumps({"key": str(i)}).encode() + b"\n" for i in range(1000))

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.params["format"] == "csv":
            return httpx.Response(404, json={"error": {"code": "batch_not_found", "message": "no"}})
        assert request.url.params["status"] == "failed"
        return httpx.Response(200, content=lines)

    with _client(handle) as client:
        assert b"".join(client.batches.export(BATCH["id"], status="failed")) == lines
        with pytest.raises(VisionqError, match="batch_not_found"):
            b"".join(client.batches.export(BATCH["id"], fmt="csv"))
        with pytest.raises(ValueError, match="format"):
            list(client.batches.export(BATCH["id"], fmt="xml"))


def test_export_connection_lost_midway_is_a_connection_error() -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield b'{"key": "a"}\n'
            raise httpx.ReadError("connection reset")

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Broken())

    with _client(handle) as client, pytest.raises(VisionqError, match="cannot reach"):
        list(client.batches.export(BATCH["id"]))


def test_lookup_is_retried_on_outages() -> None:
    answers = [
        httpx.Response(503, json={"error": {"code": "unavailable", "message": "down"}},
                       headers={"Retry-After": "0"}),
        httpx.Response(200, json={"existing": {}, "stored_sha256s": ["ab" * 32]}),
    ]  # fmt: skip

    def handle(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    with _client(handle) as client:
        lookup = client.batches.lookup(BATCH["id"], sha256s=["ab" * 32])
    assert lookup.stored_sha256s == ["ab" * 32] and answers == []
