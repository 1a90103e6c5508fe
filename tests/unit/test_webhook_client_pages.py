"""client.webhooks.attempts/deliveries follow next_cursor lazily, one GET a page."""

from __future__ import annotations

from typing import Any, cast

from visionq.client.api import VisionqClient
from visionq.client.webhooks import WebhookClient

_AT = "2026-12-05T10:00:00Z"


class _Answer:
    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body

    def json(self) -> dict[str, Any]:
        return self._body


class _Pages:
    """Answers three pages of one item each, recording every request's params."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item
        self.params: list[dict[str, Any]] = []

    def request(self, method: str, path: str, *, params: dict[str, Any]) -> _Answer:
        self.params.append(dict(params))
        n = len(self.params)
        item = {**self.item, "event_id": f"msg_{n}"}
        return _Answer({"data": [item], "next_cursor": f"c{n}" if n < 3 else None})


def test_deliveries_follow_the_cursor_lazily() -> None:
    fake = _Pages({"id": 1, "url": "https://example.com/h", "event_type": "job.failed",
                   "state": "failed", "attempts": 1, "replays": 0, "created_at": _AT})  # fmt: skip
    found = WebhookClient(cast(VisionqClient, fake)).deliveries("e1", state="failed")
    assert fake.params == []
    assert [row.event_id for row in found] == ["msg_1", "msg_2", "msg_3"]
    assert [p.get("cursor") for p in fake.params] == [None, "c1", "c2"]
    assert all(p["state"] == "failed" and p["limit"] == 200 for p in fake.params)


def test_attempts_follow_the_cursor() -> None:
    fake = _Pages({"event_type": "job.failed", "attempt": 1, "at": _AT, "outcome": "timeout"})
    found = WebhookClient(cast(VisionqClient, fake)).attempts("e1", outcome="failed")
    assert [row.event_id for row in found] == ["msg_1", "msg_2", "msg_3"]
    assert [p.get("cursor") for p in fake.params] == [None, "c1", "c2"]
    assert fake.params[0]["outcome"] == "failed"
