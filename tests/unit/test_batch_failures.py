"""Counting a batch's failed items by error code: paged, and capped for a summary."""

from __future__ import annotations

import pytest

from tests.unit.batch_fakes import FakeBatch, FakeBatchApi, FakeItem
from visionq.cli import batch_failures
from visionq.cli.batch_failures import codes_text, error_codes
from visionq.client import VisionqClient


def _batch(api: FakeBatchApi, codes: list[str]) -> str:
    batch = FakeBatch("b1", "b", {"task": "caption"}, None)
    for index, code in enumerate(codes):
        key = f"k{index}"
        batch.items[key] = FakeItem(key, f"j{index}", [], {}, status="failed", error_code=code)
    batch.items["ok"] = FakeItem("ok", "j-ok", [], {}, status="succeeded")
    api.batches[batch.id] = batch
    return batch.id


def test_codes_are_counted_across_pages_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeBatchApi()
    batch_id = _batch(api, ["timeout"] * 5 + ["gemini_refused"] * 2)
    monkeypatch.setattr(batch_failures, "PAGE", 2)
    with VisionqClient("http://api.test", "vq-test", transport=api.transport()) as client:
        codes = error_codes(client, batch_id)
        assert codes == {"timeout": 5, "gemini_refused": 2}
        assert codes_text(codes, 7) == "timeout 5, gemini_refused 2"
        monkeypatch.setattr(batch_failures, "MAX_COUNTED", 4)
        capped = error_codes(client, batch_id)
    assert sum(capped.values()) == 4
    assert codes_text(capped, 7).endswith("(of the first 4 of 7)")
