"""Where a user batch's items wait in the Gemini Batch lane (review nit 15): GET
/v1/batches/{id} counts the items not gathered yet and, per Gemini batch, its state,
Gemini's, the lines answered and its last progress; `visionq batch status` shows them.
In process (no worker: the lane never runs, the test places the jobs in a Gemini batch)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from sqlalchemy import insert, update

from tests.integration.helpers import scene_png
from tests.integration.inprocess import InProcessApi
from visionq.cli.batch_view import gemini_rows
from visionq.client.batch_models import Batch
from visionq.models.db import make_engine
from visionq.models.tables import GEMINI_BATCHES, JOBS, utcnow

pytestmark = pytest.mark.integration

MODEL = "gemini-3.8-flash"


def test_a_batch_shows_its_items_in_gemini_batches(api: InProcessApi) -> None:
    image, _ = scene_png(2401)
    encoded = base64.b64encode(image).decode()
    with api.client() as client:
        created = client.post("/v1/batches", json={
            "name": "lane-status", "task": "caption", "model": MODEL,
            "options": {"tier": "batch", "cache": False},
        })  # fmt: skip
        assert created.status_code in (200, 201), created.text
        batch_id = created.json()["id"]
        items = [{"key": f"k{n}", "images": [{"data": encoded}]} for n in range(5)]
        items.append({"key": "std", "images": [{"data": encoded}], "options": {"tier": "standard"}})
        added = client.post(f"/v1/batches/{batch_id}/items", json={"items": items})
        assert added.status_code == 200, added.text
        ids = {item["key"]: item["job_id"] for item in added.json()["items"]}
        before = client.get(f"/v1/batches/{batch_id}").json()["progress"]["gemini"]
        now = utcnow()
        engine = make_engine(api.settings.database_url, pool_size=1)
        with engine.begin() as connection:
            connection.execute(insert(GEMINI_BATCHES), [{
                "id": "gb-1-0000", "identity": "x" * 64, "model": MODEL, "state": "running",
                "gemini_state": "BATCH_STATE_RUNNING", "input_mode": "inline", "job_count": 40,
                "request_bytes": 0, "stats": {"requestCount": 40, "successfulRequestCount": 9,
                "failedRequestCount": 1}, "progress_at": now - timedelta(seconds=90),
                "created_at": now,
            }])  # fmt: skip
            connection.execute(
                update(JOBS)
                .where(JOBS.c.id.in_([ids["k0"], ids["k1"], ids["k2"]]))
                .values(gemini_batch_id="gb-1-0000", status="running")
            )
        engine.dispose()
        shown = client.get(f"/v1/batches/{batch_id}").json()
    assert before == {"gathering": 5, "in_batches": 0, "batches": []}
    lane = shown["progress"]["gemini"]
    assert (lane["gathering"], lane["in_batches"]) == (2, 3)
    (gemini,) = lane["batches"]
    assert gemini["id"] == "gb-1-0000" and gemini["state"] == "running"
    assert gemini["gemini_state"] == "BATCH_STATE_RUNNING"
    assert (gemini["items"], gemini["requests"], gemini["answered"]) == (3, 40, 10)
    # The CLI's rows (`visionq batch status`), read through the client's model.
    progress = Batch.model_validate(shown).progress
    assert progress is not None and progress.gemini is not None
    rows = dict(gemini_rows(progress.gemini))
    assert rows["batch lane"] == "3 in 1 Gemini batch(es), 2 waiting to be gathered"
    text = rows["  gemini gb-1-000"]
    assert text.startswith("running (BATCH_STATE_RUNNING), 10/40 answered, 3 of ours, progress ")
    assert text.endswith(" ago")


def test_a_batch_with_no_item_in_the_batch_lane_shows_none(api: InProcessApi) -> None:
    image, _ = scene_png(2402)
    with api.client() as client:
        created = client.post("/v1/batches", json={
            "name": "lane-status-none", "task": "caption", "model": MODEL,
            "options": {"cache": False},
        })  # fmt: skip
        batch_id = created.json()["id"]
        added = client.post(f"/v1/batches/{batch_id}/items", json={"items": [
            {"key": "a", "images": [{"data": base64.b64encode(image).decode()}]},
        ]})  # fmt: skip
        assert added.status_code == 200, added.text
        shown = client.get(f"/v1/batches/{batch_id}").json()
    assert shown["progress"]["gemini"] is None
