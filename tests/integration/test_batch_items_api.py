"""Batch items over the API: cursor and key limits, and a job naming its batch and key."""

from __future__ import annotations

import random

import pytest

from tests.integration.batch_api_calls import (
    CUT,
    _add,
    _all_items,
    _create,
    _error,
    _image,
    _items,
    _jobs,
    _wait_done,
)
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def test_cursor_and_key_limits_hold_on_every_database(stack: Stack) -> None:
    """A cursor past what batch_items.id holds (32 bits on PostgreSQL) is a 400, never the
    database's error; a key is bounded by UTF-8 bytes (the unique index holds bytes: 1,024
    characters of 4-byte text passed a character limit and failed PostgreSQL's btree as a
    retryable 503), refused as a whole call with the limit named; 1,024 bytes are stored."""
    picker = random.Random(19)

    def emoji_key(chars: int) -> str:  # incompressible 4-byte characters
        return "".join(chr(picker.randrange(0x1F300, 0x1FAFF)) for _ in range(chars))

    with stack.client() as client:
        batch_id = _create(client, f"limits-{stack.name}").json()["id"]
        longest = emoji_key(256)  # 1,024 bytes
        added = _add(client, batch_id, [{"key": longest, "images": [{"data": _image(901)}]}])
        assert added["created"] == 1, added
        pages = f"/v1/batches/{batch_id}/items"
        for cursor in ("2147483648", "999999999999999999", "99999999999"):
            _error(client.get(pages, params={"cursor": cursor}), 400, "invalid_cursor")
        last = client.get(pages, params={"cursor": "2147483647"})
        assert last.status_code == 200 and last.json()["items"] == []
        for chars in (257, 1024):
            refused = client.post(
                f"/v1/batches/{batch_id}/items",
                json={"items": [{"key": emoji_key(chars), "images": [{"data": _image(902)}]}]},
            )
            message = _error(refused, 422, "invalid_item_key")
            assert "1,024 bytes" in message, message
        assert client.get(f"/v1/batches/{batch_id}").json()["item_count"] == 1
        # The lookup of a key no item can have finds nothing (and is no error).
        found = client.post(f"/v1/batches/{batch_id}/lookup", json={"keys": [emoji_key(1024)]})
        assert found.status_code == 200 and found.json()["existing"] == {}


def test_a_batch_items_job_names_its_batch_and_key(stack: Stack) -> None:
    """GET /v1/jobs/{id} (and the lists) of a batch item's job carry its batch id and key;
    a single job's are null; after a re-run the new job carries them."""
    with stack.client() as client:
        batch_id = _create(client, f"ref-{stack.name}").json()["id"]
        added = _add(client, batch_id, _items(range(910, 912), "ref/", options=CUT))
        job_ids = [item["job_id"] for item in added["items"]]
        job = client.get(f"/v1/jobs/{job_ids[0]}").json()
        assert (job["batch_id"], job["batch_key"]) == (batch_id, "ref/910.png")
        listed = _jobs(client, job_ids)
        assert [listed[i]["batch_key"] for i in job_ids] == ["ref/910.png", "ref/911.png"]
        single = client.post(
            "/v1/jobs", json={"task": "caption", "images": [{"data": _image(913)}]}
        )
        assert single.status_code in (200, 202), single.text
        alone = client.get(f"/v1/jobs/{single.json()['id']}").json()
        assert alone["batch_id"] is None and alone["batch_key"] is None
        _wait_done(client, batch_id)
        rerun = client.post(
            f"/v1/batches/{batch_id}/rerun", json={"options": {"max_output_tokens": 200}}
        )
        assert rerun.status_code == 202 and rerun.json()["rerun"] == 2, rerun.text
        new_id = _all_items(client, batch_id, limit=10)[0]["job_id"]
        new = client.get(f"/v1/jobs/{new_id}").json()
        assert (new["batch_id"], new["batch_key"], new["retry_of"]) == (
            batch_id,
            "ref/910.png",
            job_ids[0],
        )
