"""The job list's filters the web console uses (issue 22): task, model, tier, batch, status
and the created_after/created_before range (aware times in any offset; a time without one
is UTC), alone and together, with the keyset cursor paging under each. On SQLite and on
PostgreSQL (the ``database_url`` fixture): comparing timestamps depends on the database.
In process (inprocess.py), on a new empty database of that kind: none of it needs a worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests.integration.conftest import redis_db
from tests.integration.helpers import noise_png, submit
from tests.integration.inprocess import InProcessApi, in_process_api
from tests.integration.test_migration_race import empty_database
from visionq.models.db import make_session_factory
from visionq.models.tables import JOBS

pytestmark = pytest.mark.integration

MODEL_A, MODEL_B = "gemini-3.5-flash-lite", "gemini-3.6-flash"
# Offsets other than UTC's, on both sides of it: the same instant must filter the same.
INDIA, CALIFORNIA = timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))


@pytest.fixture(scope="module")
def api(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[InProcessApi]:
    """The app in process on a new empty database of ``database_url``'s kind."""
    data_dir = Path(tmp_path_factory.mktemp("filters"))
    with in_process_api(
        data_dir,
        redis_db(redis_url),
        ("acme", "globex"),
        database_url=empty_database(database_url, data_dir),
    ) as app:
        yield app


def _job(client: httpx.Client, seed: int, **fields: Any) -> dict[str, Any]:
    response = submit(client, noise_png(seed, 24), **fields)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def _ids(client: httpx.Client, **query: Any) -> list[str]:
    """Every job id the list gives for ``query``, following the cursor page by page."""
    ids: list[str] = []
    params = {key: value for key, value in query.items() if value is not None}
    while True:
        response = client.get("/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [job["id"] for job in page["jobs"]]
        if not page["next_cursor"]:
            return ids
        params["cursor"] = page["next_cursor"]


def _set(api: InProcessApi, job_id: str, **values: Any) -> None:
    with make_session_factory(api.engine).begin() as session:
        session.execute(update(JOBS).where(JOBS.c.id == job_id).values(**values))


@pytest.fixture(scope="module")
def seeded(api: InProcessApi) -> dict[str, Any]:
    """acme: caption/A/standard (old), detect/B/flex (old), caption/B/standard, and a
    batch item's detect/A job; globex: one caption/A job. The two new acme jobs share one
    created_at (``tie``), so the cursor's tie-break on the id is exercised under filters."""
    with api.client("acme") as client:
        old_caption = _job(client, 1, task="caption", model=MODEL_A)
        old_detect = _job(
            client, 2, task="detect", model=MODEL_B, options={"tier": "flex", "deadline_s": 3600}
        )
        new_caption = _job(client, 3, task="caption", model=MODEL_B)
        batch = client.post("/v1/batches", json={"name": "console", "task": "detect"})
        assert batch.status_code == 201, batch.text
        batch_id = batch.json()["id"]
        items = {"items": [{"key": "a.png", "images": [{"part": 0}], "model": MODEL_A}]}
        added = client.post(
            f"/v1/batches/{batch_id}/items",
            data={"items": json.dumps(items)},
            files=[("image", ("a.png", noise_png(4, 24), "image/png"))],
        )
        assert added.status_code == 200, added.text
        [item] = added.json()["items"]
        batch_job = item["job_id"]
    with api.client("globex") as client:
        other = _job(client, 5, task="caption", model=MODEL_A)
    # Two time groups: the first two jobs were created two days ago, the next two at `tie`.
    boundary = datetime.now(UTC) - timedelta(days=1)
    for offset, job in enumerate((old_caption, old_detect)):
        _set(api, job["id"], created_at=boundary - timedelta(days=1, seconds=offset))
    tie = boundary + timedelta(hours=1, microseconds=123)
    for job in (new_caption, {"id": batch_job}):
        _set(api, job["id"], created_at=tie)
    return {
        "old_caption": old_caption["id"],
        "old_detect": old_detect["id"],
        "new_caption": new_caption["id"],
        "batch_job": batch_job,
        "batch_id": batch_id,
        "other": other["id"],
        "boundary": boundary,
        "tie": tie,
    }


def test_each_filter_narrows_the_list(api: InProcessApi, seeded: dict[str, Any]) -> None:
    s = seeded
    boundary, tie = s["boundary"].isoformat(), s["tie"]
    old, new = {s["old_caption"], s["old_detect"]}, {s["new_caption"], s["batch_job"]}
    mine = old | new
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, mine),
        ({"task": "caption"}, {s["old_caption"], s["new_caption"]}),
        ({"task": "detect"}, {s["old_detect"], s["batch_job"]}),
        ({"model": MODEL_B}, {s["old_detect"], s["new_caption"]}),
        ({"tier": "flex"}, {s["old_detect"]}),
        ({"tier": "standard"}, mine - {s["old_detect"]}),
        ({"batch": s["batch_id"]}, {s["batch_job"]}),
        ({"created_before": boundary}, old),
        ({"created_after": boundary}, new),
        # A time without a zone is UTC.
        ({"created_after": s["boundary"].replace(tzinfo=None).isoformat()}, new),
        # The same instant in other offsets: created_after includes it, created_before not.
        ({"created_after": tie.astimezone(INDIA).isoformat()}, new),
        ({"created_after": tie.astimezone(CALIFORNIA).isoformat()}, new),
        ({"created_before": tie.astimezone(INDIA).isoformat()}, old),
        ({"created_before": tie.astimezone(CALIFORNIA).isoformat()}, old),
        ({"created_after": (tie + timedelta(microseconds=1)).astimezone(INDIA).isoformat()},
         set()),
        ({"created_after": boundary,
          "created_before": (tie + timedelta(microseconds=1)).astimezone(CALIFORNIA).isoformat()},
         new),
        ({"task": "caption", "created_after": boundary}, {s["new_caption"]}),
        ({"task": "detect", "model": MODEL_A, "status": "queued"}, {s["batch_job"]}),
        ({"status": "succeeded"}, set()),
        # Unknown, malformed and other tenants' batches: an empty page, nothing leaked.
        ({"batch": "not-a-batch"}, set()),
    ]  # fmt: skip
    with api.client("acme") as client:
        for query, expected in cases:
            listed = _ids(client, **query)
            assert set(listed) == expected, query
            assert len(listed) == len(expected), query
            # The cursor holds under every filter: a page of one at a time gives the same.
            assert _ids(client, limit=1, **query) == listed, query
            # With ids, the filters narrow the page the same way.
            page = client.get("/v1/jobs", params={"ids": ",".join(sorted(mine)), **query})
            assert {job["id"] for job in page.json()["jobs"]} == expected, query
        # Newest first; the two jobs created at the same instant by id, descending.
        assert _ids(client, limit=1, created_after=boundary) == sorted(new, reverse=True)
        assert all(
            job["batch_id"] == s["batch_id"]
            for job in client.get("/v1/jobs", params={"batch": s["batch_id"]}).json()["jobs"]
        )
    with api.client("globex") as client:
        assert _ids(client, batch=s["batch_id"]) == []
        assert _ids(client, task="caption") == [s["other"]]
