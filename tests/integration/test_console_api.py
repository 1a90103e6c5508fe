"""The API the web console reads (issue 22): bad job list filters, input images and spending
(the filters themselves, on SQLite and PostgreSQL: test_console_filters.py; CORS and the
/console mount: test_console_mount.py). In process (inprocess.py): none of it
needs a worker."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import update
from typer.testing import CliRunner

from tests.integration.conftest import redis_db
from tests.integration.helpers import noise_png, submit
from tests.integration.inprocess import InProcessApi, in_process_api
from visionq.cli.main import app
from visionq.models.db import make_session_factory
from visionq.models.reports import (
    SpendRow,
    cache_sources,
    finished_jobs,
    spend_by,
    spend_cells,
    spending,
)
from visionq.models.tables import JOBS, Job
from visionq.vision.calibration import accuracy, observation_of

pytestmark = pytest.mark.integration

MODEL_A, MODEL_B = "gemini-3.5-flash-lite", "gemini-3.6-flash"


def _job(client: httpx.Client, seed: int, **fields: Any) -> dict[str, Any]:
    response = submit(client, noise_png(seed, 24), **fields)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def _set(api: InProcessApi, job_id: str, **values: Any) -> None:
    with make_session_factory(api.engine).begin() as session:
        session.execute(update(JOBS).where(JOBS.c.id == job_id).values(**values))


@pytest.mark.parametrize(
    "query",
    [
        {"created_after": "2030-01-02T00:00:00Z", "created_before": "2030-01-01T00:00:00Z"},
        {"created_after": "2030-01-01T00:00:00Z", "created_before": "2030-01-01T00:00:00Z"},
        {"created_after": "yesterday"},
        {"task": "paint"},
        {"tier": "cheap"},
        {"model": "m" * 101},
        # Empty is not "any": it would match no job and look like an empty list.
        {"model": ""},
        {"batch": ""},
        # Before year 1 / after 9999 once in UTC: out of datetime's range, not a 500.
        {"created_after": "0001-01-01T00:00:00+01:00"},
        {"created_before": "9999-12-31T23:59:59-01:00"},
        {"created_before": "9999-12-31T23:59:59-01:00", "ids": "x"},
    ],
)
def test_bad_filters_are_422(api: InProcessApi, query: dict[str, str]) -> None:
    with api.client("acme") as client:
        response = client.get("/v1/jobs", params=query)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


def _encoded(fmt: str, size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", size, (200, 30, 60))
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.from_pillow(image).save(out, quality=95)
    else:
        image.save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "stored", "served"),
    [
        ("PNG", "image/png", "image/png"),
        ("JPEG", "image/jpeg", "image/jpeg"),
        ("WEBP", "image/webp", "image/webp"),
        ("HEIF", "image/heic", "image/png"),
    ],
)
def test_input_image_is_served_as_stored(
    api: InProcessApi, fmt: str, stored: str, served: str
) -> None:
    data = _encoded(fmt)
    with api.client("acme") as client:
        job = submit(client, [data, noise_png(9, 16)], task="compare").json()
        assert job["inputs"][0]["mime_type"] in (stored, "image/heif")
        response = client.get(f"/v1/jobs/{job['id'][:8]}/images/0")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == served
        # The ETag names the bytes sent (a HEIC's PNG has its own); the browser revalidates
        # every time and keeps answers apart per key.
        sha = job["inputs"][0]["sha256"]
        etag = f'"{sha}"' if served == stored else f'"{sha}.png"'
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == "private, no-cache"
        assert response.headers["vary"] == "Authorization"
        for tags in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            same = client.get(f"/v1/jobs/{job['id']}/images/0", headers={"If-None-Match": tags})
            assert same.status_code == 304, tags
            assert (same.content, same.headers["etag"]) == (b"", etag)
        changed = client.get(
            f"/v1/jobs/{job['id']}/images/0", headers={"If-None-Match": f'"{sha}.old"'}
        )
        assert changed.status_code == 200 and changed.content == response.content
        if served == stored:
            assert response.content == data
        with Image.open(io.BytesIO(response.content)) as shown:
            assert shown.size == (job["inputs"][0]["width"], job["inputs"][0]["height"])
        second = client.get(f"/v1/jobs/{job['id']}/images/1")
        assert second.status_code == 200 and second.content == noise_png(9, 16)
        missing = client.get(f"/v1/jobs/{job['id']}/images/2")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "image_not_found"
        assert missing.json()["error"]["message"] == "The job has 2 images (positions 0-1)."
    with api.client("globex") as client:
        # Another key revalidating with the ETag is checked, not told "not modified".
        hidden = client.get(f"/v1/jobs/{job['id']}/images/0", headers={"If-None-Match": etag})
        assert hidden.status_code == 404
        assert hidden.json()["error"]["code"] == "job_not_found"


def test_an_image_position_past_a_one_image_job_says_so_in_the_singular(
    api: InProcessApi,
) -> None:
    with api.client("acme") as client:
        job = submit(client, noise_png(5, 7), task="caption").json()
        missing = client.get(f"/v1/jobs/{job['id']}/images/1")
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"] == {
        "code": "image_not_found",
        "message": "The job has 1 image (position 0).",
    }


def test_input_image_gone_after_retention(api: InProcessApi) -> None:
    data = noise_png(11, 20)
    with api.client("acme") as client:
        job = submit(client, data, task="caption").json()
        blobs = Path(api.settings.blob_dir)
        [path] = [p for p in blobs.rglob(job["inputs"][0]["sha256"] + "*") if p.is_file()]
        os.remove(path)
        response = client.get(f"/v1/jobs/{job['id']}/images/0")
    assert response.status_code == 410, response.text
    assert response.json()["error"]["code"] == "job_inputs_gone"


def _finish(api: InProcessApi, job_id: str, *, days_ago: float, **values: Any) -> None:
    finished = datetime.now(UTC) - timedelta(days=days_ago)
    _set(
        api,
        job_id,
        status="succeeded",
        started_at=finished,
        finished_at=finished,
        **values,
    )


@pytest.fixture(scope="module")
def spend_api(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[InProcessApi]:
    """An app of its own: the spending test finishes jobs, which the list tests must not see."""
    with in_process_api(
        Path(tmp_path_factory.mktemp("spend")), redis_db(redis_url), ("spender-a", "spender-b")
    ) as app:
        yield app


def test_spending_counts_as_the_cost_report(spend_api: InProcessApi) -> None:
    api = spend_api
    with api.client("spender-a") as client, api.client("spender-b") as rival:
        a = _job(client, 21, task="caption", model=MODEL_A)
        b = _job(client, 22, task="caption", model=MODEL_B)
        c = _job(client, 23, task="detect", model=MODEL_A)
        old = _job(client, 24, task="caption", model=MODEL_A)
        foreign = _job(rival, 25, task="caption", model=MODEL_A)
    usage = {"prompt_tokens": 300, "candidates_tokens": 20, "thoughts_tokens": 5}
    _finish(api, a["id"], days_ago=0, cost_nusd=5_000, standard_cost_nusd=5_000,
            served_tier="standard", **usage)  # fmt: skip
    _finish(api, b["id"], days_ago=0, cost_nusd=2_000, standard_cost_nusd=4_000,
            served_tier="flex", **usage)  # fmt: skip
    _finish(api, c["id"], days_ago=2, cost_nusd=7_000, standard_cost_nusd=7_000,
            served_tier="standard", **usage)  # fmt: skip
    _finish(api, old["id"], days_ago=40, cost_nusd=9_000, served_tier="standard", **usage)
    _finish(api, foreign["id"], days_ago=0, cost_nusd=1_000, served_tier="standard", **usage)
    with api.client("spender-a") as client:
        report = client.get("/v1/spending").json()
        longer = client.get("/v1/spending", params={"days": 60}).json()
        for days in ("0", "367", "x"):
            bad = client.get("/v1/spending", params={"days": days})
            assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    today = datetime.now(UTC).date()
    assert (report["since"], report["until"]) == (
        (today - timedelta(days=29)).isoformat(),
        today.isoformat(),
    )
    two_days_ago = (today - timedelta(days=2)).isoformat()
    assert [
        (r["day"], r["model"], r["tier"], r["jobs"], r["cost_usd"]) for r in report["rows"]
    ] == [
        (two_days_ago, MODEL_A, "standard", 1, "0.000007"),
        (today.isoformat(), MODEL_A, "standard", 1, "0.000005"),
        (today.isoformat(), MODEL_B, "flex", 1, "0.000002"),
    ]
    assert report["rows"][0]["prompt_tokens"] == 300 and report["rows"][0]["output_tokens"] == 25
    assert report["totals"] == {
        "jobs": 3,
        "cost_usd": "0.000014",
        "standard_usd": "0.000016",
        "saved_usd": "0.000002",
        "saved_pct": 12.5,
    }
    assert longer["totals"]["jobs"] == 4 and longer["totals"]["cost_usd"] == "0.000023"
    # The same numbers as `visionq cost report` counts for this tenant.
    with make_session_factory(api.engine)() as session:
        since = datetime.combine(today - timedelta(days=59), datetime.min.time(), tzinfo=UTC)
        jobs = finished_jobs(session, since=since, tenant="spender-a")
        sources = cache_sources(session, jobs)
        by_model = {row.key: row for row in spend_by(jobs, "model", sources)}
        cells = spend_cells(jobs, sources)
    assert sum(cell.cost_nusd for cell in cells) == sum(r.cost_nusd for r in by_model.values())
    assert {(r["model"], r["cost_usd"]) for r in longer["rows"]} <= {
        (cell.model, f"{cell.cost_nusd / 1e9:.6f}") for cell in cells
    }


def test_finished_jobs_reads_no_result(spend_api: InProcessApi) -> None:
    """The report's query leaves the result JSON unread (it can be large)."""
    with make_session_factory(spend_api.engine)() as session:
        jobs = finished_jobs(session, since=None, tenant="spender-a")
        assert jobs
        assert "result" not in {key for key in vars(jobs[0]) if not key.startswith("_")}
        assert all(isinstance(job, Job) for job in jobs)


def test_spending_reads_a_page_at_a_time_with_the_cost_reports_numbers(
    spend_api: InProcessApi,
) -> None:
    """models.reports.spending, a page of jobs per query (here 2, with jobs finished at the
    same instant across a page boundary), counts exactly what the CLI's whole-list
    functions count: cells, total and the estimate errors."""
    api = spend_api
    with api.client("spender-a") as client:
        jobs = [
            _job(client, 30 + n, task="caption", model=(MODEL_A, MODEL_B)[n % 2]) for n in range(7)
        ]
    same = datetime.now(UTC) - timedelta(hours=1)
    for n, job in enumerate(jobs):
        _set(api, job["id"], status="succeeded", started_at=same, finished_at=same,
             served_tier=("standard", "flex")[n % 2], cost_nusd=1_000 * (n + 1),
             standard_cost_nusd=1_500 * (n + 1), prompt_tokens=100 + n,
             usage={"prompt_token_count": 90 + 7 * n})  # fmt: skip
    _set(api, jobs[6]["id"], cached_from=jobs[0]["id"], served_tier=None, cost_nusd=0)
    since = same - timedelta(days=3)
    with make_session_factory(api.engine)() as session:
        whole = finished_jobs(session, since=since, tenant="spender-a")
        sources = cache_sources(session, whole)
        cells = spend_cells(whole, sources)
        [total] = [
            SpendRow(key="total", jobs=sum(r.jobs for r in rows),
                     cost_nusd=sum(r.cost_nusd for r in rows),
                     standard_nusd=sum(r.standard_nusd for r in rows))
            for rows in [spend_by(whole, "model", sources)]
        ]  # fmt: skip
        checks = accuracy(
            observation_of(job.model, job.estimate, job.usage)
            for job in whole
            if not job.cached_from
        )
        for page in (2, 1000):
            report = spending(session, since=since, tenant="spender-a", page=page)
            assert report.cells == cells, page
            assert (report.total.jobs, report.total.cost_nusd, report.total.standard_nusd) == (
                total.jobs, total.cost_nusd, total.standard_nusd
            ), page  # fmt: skip
            assert report.estimation == [
                (c.model, c.jobs, c.mean_abs_pct, c.worst_abs_pct) for c in checks
            ], page
    assert len(checks) == 2 and all(c.jobs >= 3 for c in checks)


def test_dev_help_says_it_prints_the_console_url() -> None:
    """`visionq dev --help` says where the console is, as README's Console section does."""
    shown = CliRunner().invoke(app, ["dev", "--help"], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    words = " ".join(shown.output.replace("│", " ").split())
    assert "URLs of the API and of the web console (/console/" in words
