"""Service tiers at admission (api/tiers.py, api/budget_gate.py): the estimate and the budget
hold at the lane's price, 422 for a tier the model has no price for, auto's lane chosen from
the measured turnarounds (table tier_turnarounds), and one cache across tiers. SQLite and
PostgreSQL (the ``stack`` fixture)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from tests.integration.conftest import Stack, redis_db
from tests.integration.helpers import run_job, scene_png, submit
from tests.integration.inprocess import InProcessApi, in_process_api
from visionq.models.db import make_engine, make_session_factory
from visionq.models.tables import TIER_TURNAROUNDS, utcnow

pytestmark = pytest.mark.integration

MODEL = "gemini-3.8-flash"
# A preview model priced at standard and batch only (vision/data/models.json).
NO_FLEX_MODEL = "gemini-3-flash-preview"


def _estimate(client: httpx.Client, image: bytes, model: str, **options: Any) -> httpx.Response:
    body = {
        "task": "caption",
        "model": model,
        "images": [{"data": base64.b64encode(image).decode()}],
        "options": options,
    }
    return client.post("/v1/estimate", json=body)


def _cost(estimate: dict[str, Any]) -> tuple[Decimal, Decimal]:
    cost = estimate["cost_usd"]
    return Decimal(cost["min"]), Decimal(cost["max"])


def test_the_estimate_is_at_the_tiers_price(stack: Stack) -> None:
    image, _ = scene_png(2001)
    with stack.client() as client:
        standard = _estimate(client, image, MODEL).raise_for_status().json()
        flex = _estimate(client, image, MODEL, tier="flex").raise_for_status().json()
        batch = _estimate(client, image, MODEL, tier="batch").raise_for_status().json()
        priority = _estimate(client, image, MODEL, tier="priority").raise_for_status().json()
    assert (standard["tier"], flex["tier"], batch["tier"]) == ("standard", "flex", "batch")
    low, high = _cost(standard)
    assert _cost(flex) == (low / 2, high / 2)
    assert _cost(batch) == (low / 2, high / 2)
    assert _cost(priority)[1] > high


def test_a_tier_without_a_price_is_refused(stack: Stack) -> None:
    image, _ = scene_png(2002)
    with stack.client() as client:
        refused = submit(client, image, task="caption", model=NO_FLEX_MODEL,
                         options={"tier": "flex"})  # fmt: skip
        estimate = _estimate(client, image, NO_FLEX_MODEL, tier="flex")
        # auto skips the unpriced tier instead (flex would fit a 2-hour deadline).
        auto = _estimate(client, image, NO_FLEX_MODEL, tier="auto", deadline_s=7200)
    for response in (refused, estimate):
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "tier_not_priced"
        assert f"No flex price for {NO_FLEX_MODEL}" in error["message"]
        assert "use tier standard" in error["message"]
    assert auto.status_code == 200, auto.text
    assert auto.json()["tier"] == "standard"
    assert "flex has no price for this model" in auto.json()["assumptions"][-1]


@pytest.fixture
def fresh_api(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[InProcessApi]:
    """An API of its own (in process) on the session's database: its turnaround cache
    (api/tiers.py, read at most every 30 s) has read nothing yet, so the rows a test seeds
    are what its first auto job sees."""
    with in_process_api(tmp_path, redis_db(redis_url), ("tiers-auto",),
                        database_url=database_url) as app:  # fmt: skip
        yield app


@contextmanager
def _measured(api: InProcessApi, rows: list[dict[str, Any]]) -> Iterator[None]:
    """The measured turnarounds are ``rows`` (and only those) while the block runs."""
    engine = make_engine(api.settings.database_url, pool_size=1)
    sessions = make_session_factory(engine)
    try:
        for tries_left in reversed(range(5)):
            try:
                with sessions.begin() as session:
                    session.execute(delete(TIER_TURNAROUNDS))
                    session.execute(insert(TIER_TURNAROUNDS), rows)
                break
            except IntegrityError:
                # Another stack's batch lane on this shared database measured the same
                # (model, tier) between the delete and the insert: seed again.
                if not tries_left:
                    raise
        yield
    finally:
        with sessions.begin() as session:
            session.execute(delete(TIER_TURNAROUNDS))
        engine.dispose()


def test_auto_picks_the_lane_from_measured_turnarounds(fresh_api: InProcessApi) -> None:
    image, _ = scene_png(2003)
    # Measured: batch jobs of this model end in 20 min (p90), from enough samples; the other
    # model has too few samples to count, so its priors apply (batch 24 h).
    rows = [
        {"model": MODEL, "tier": "batch", "samples": 50, "p50_s": 600.0, "p90_s": 1200.0,
         "measured_at": utcnow()},
        {"model": "gemini-3.6-flash", "tier": "batch", "samples": 3, "p50_s": 60.0,
         "p90_s": 90.0, "measured_at": utcnow()},
    ]  # fmt: skip
    with _measured(fresh_api, rows), fresh_api.client("tiers-auto") as client:
        two_hours = _estimate(client, image, MODEL, tier="auto", deadline_s=7200)
        urgent = _estimate(client, image, MODEL, tier="auto", deadline_s=600)
        unmeasured = _estimate(client, image, "gemini-3.6-flash", tier="auto",
                               deadline_s=7200)  # fmt: skip
    chosen = two_hours.raise_for_status().json()
    assert chosen["tier"] == "batch"
    assert chosen["assumptions"][-1] == (
        "tier auto → batch: batch p90 1200 s x 1.5 + gather 150 s + sync reserve 600 s "
        "<= deadline 7200 s"
    )
    assert urgent.raise_for_status().json()["tier"] == "standard"
    fallback = unmeasured.raise_for_status().json()
    assert fallback["tier"] == "flex"
    assert "batch (prior) 86400 s" in fallback["assumptions"][-1]


def test_auto_picks_batch_only_when_the_batch_lane_can_serve_it(
    fresh_api: InProcessApi,
) -> None:
    """A measured batch p90 of 12 s does not make a 60 s deadline a batch job: the lane
    gathers for up to VISIONQ_BATCH_GATHER_S (+ a tick) and hands a job to standard
    VISIONQ_BATCH_SYNC_RESERVE_S before its deadline, so batch needs 18 + 150 + 600 s."""
    image, _ = scene_png(2007)
    row = {"model": MODEL, "tier": "batch", "samples": 200, "p50_s": 10.0, "p90_s": 12.0,
           "measured_at": utcnow()}  # fmt: skip
    with _measured(fresh_api, [row]), fresh_api.client("tiers-auto") as client:
        urgent = _estimate(client, image, MODEL, tier="auto", deadline_s=60)
        near = _estimate(client, image, MODEL, tier="auto", deadline_s=767)
        room = _estimate(client, image, MODEL, tier="auto", deadline_s=768)
        job = submit(client, image, task="caption", model=MODEL,
                     options={"tier": "auto", "deadline_s": 60, "cache": False})  # fmt: skip
    assert urgent.raise_for_status().json()["tier"] == "standard"
    assert urgent.json()["assumptions"][-1].startswith(
        "tier auto → standard: batch p90 12 s x 1.5 + gather 150 s + sync reserve 600 s > "
        "deadline 60 s: does not fit"
    )
    assert near.raise_for_status().json()["tier"] == "standard"
    assert room.raise_for_status().json()["tier"] == "batch"
    assert job.status_code == 202, job.text
    assert job.json()["lane"] == "standard"


def test_tier_batch_is_refused_while_the_batch_lane_is_off(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    """VISIONQ_BATCH_LANE_ENABLED=false: nothing would ever gather a batch job, so an
    explicit tier batch (single, estimate, a user batch's default) is a 422 saying what to
    use instead, and auto never picks batch (even for a deadline of days)."""
    image, _ = scene_png(2008)
    off = {"database_url": database_url, "batch_lane_enabled": False}
    user_batch = {"name": "off", "task": "caption", "model": MODEL, "options": {"tier": "batch"}}
    with (
        in_process_api(tmp_path, redis_db(redis_url), ("lane-off",), **off) as app,
        app.client("lane-off") as client,
    ):
        refused = [
            submit(client, image, task="caption", model=MODEL, options={"tier": "batch"}),
            _estimate(client, image, MODEL, tier="batch"),
            client.post("/v1/batches", json=user_batch),
        ]
        auto = _estimate(client, image, MODEL, tier="auto", deadline_s=7 * 86_400)
    for response in refused:
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "tier_unavailable", error
        assert "VISIONQ_BATCH_LANE_ENABLED=false" in error["message"]
        assert "Use tier flex" in error["message"]
    assert auto.raise_for_status().json()["tier"] == "flex"
    assert "batch lane off" in auto.json()["assumptions"][-1]


def test_a_job_stores_its_tier_lane_and_deadline(stack: Stack) -> None:
    image, _ = scene_png(2004)
    with stack.client() as client:
        job = run_job(client, image, task="caption", model=MODEL,
                      options={"tier": "standard", "deadline_s": 900})  # fmt: skip
    assert job["status"] == "succeeded", job
    assert (job["tier"], job["lane"], job["served_tier"]) == ("standard", "standard", "standard")
    created = job["created_at"]
    assert job["deadline_at"] is not None and job["deadline_at"] > created
    assert job["attempts"][-1]["served_tier"] == "standard"
    assert job["estimate"]["tier"] == "standard"


def test_the_cache_answers_across_tiers(stack: Stack) -> None:
    image, _ = scene_png(2005)
    with stack.client() as client:
        first = run_job(client, image, task="caption", model=MODEL)
        assert first["status"] == "succeeded" and first["cached_from"] is None
        response = submit(client, image, task="caption", model=MODEL,
                          options={"tier": "flex", "deadline_s": 3600})  # fmt: skip
    assert response.status_code == 202, response.text
    second = response.json()
    assert second["status"] == "succeeded" and second["cached_from"] == first["id"]
    assert second["tier"] == "flex" and second["cost_usd"] == "0"


def test_batch_lane_jobs_get_no_message(api: InProcessApi) -> None:
    """A job of the batch lane (single or a user batch's item, the tier given per job or
    as the batch's default) is stored queued for the worker's batch lane, with no Celery
    message; the other lanes' jobs get theirs."""
    queue = redis.Redis.from_url(api.settings.redis_url)

    def messages() -> int:
        return sum(queue.llen(key) for key in queue.scan_iter() if queue.type(key) == b"list")

    image, _ = scene_png(2006)
    encoded = base64.b64encode(image).decode()
    with api.client() as client:
        flex = submit(client, image, task="caption", model=MODEL, options={"tier": "flex"})
        assert flex.status_code == 202, flex.text
        assert messages() == 1
        lane = submit(client, image, task="caption", model=MODEL,
                      options={"tier": "batch", "cache": False})  # fmt: skip
        assert lane.status_code == 202, lane.text
        assert (lane.json()["status"], lane.json()["lane"]) == ("queued", "batch")
        assert messages() == 1
        created = client.post("/v1/batches", json={
            "name": "tiers", "task": "caption", "model": MODEL,
            "options": {"tier": "batch", "cache": False},
        })  # fmt: skip
        assert created.status_code in (200, 201), created.text
        added = client.post(f"/v1/batches/{created.json()['id']}/items", json={"items": [
            {"key": "a", "images": [{"data": encoded}]},
            {"key": "b", "images": [{"data": encoded}], "options": {"tier": "flex"}},
        ]})  # fmt: skip
        assert added.status_code == 200, added.text
        ids = {item["key"]: item["job_id"] for item in added.json()["items"]}
        jobs = {key: client.get(f"/v1/jobs/{job_id}").json() for key, job_id in ids.items()}
    assert messages() == 2  # the flex job and item b
    assert (jobs["a"]["tier"], jobs["a"]["lane"]) == ("batch", "batch")
    assert (jobs["b"]["tier"], jobs["b"]["lane"]) == ("flex", "flex")
    assert jobs["a"]["deadline_at"] > jobs["a"]["created_at"]


def test_auto_picks_flex_only_when_the_flex_lane_can_serve_it(fresh_api: InProcessApi) -> None:
    """A measured flex p90 of 120 s does not make a 300 s deadline a flex job: the flex lane
    cuts its calls VISIONQ_FLEX_RESERVE_S (300 s) before the deadline and sends the job to
    standard when nothing is left, so flex needs 180 + 300 s."""
    image, _ = scene_png(2009)
    row = {"model": MODEL, "tier": "flex", "samples": 200, "p50_s": 60.0, "p90_s": 120.0,
           "measured_at": utcnow()}  # fmt: skip
    with _measured(fresh_api, [row]), fresh_api.client("tiers-auto") as client:
        short = _estimate(client, image, MODEL, tier="auto", deadline_s=300)
        room = _estimate(client, image, MODEL, tier="auto", deadline_s=480)
    assert short.raise_for_status().json()["tier"] == "standard"
    assert (
        "flex p90 120 s x 1.5 + flex reserve 300 s > deadline 300 s: does not fit"
        in (short.json()["assumptions"][-1])
    )
    assert room.raise_for_status().json()["tier"] == "flex"


def test_an_explicit_tier_with_a_deadline_its_lane_cannot_serve_is_refused(
    api: InProcessApi,
) -> None:
    """tier flex under VISIONQ_FLEX_RESERVE_S + 1 s, tier batch under the batch lane's gather,
    tick and sync reserve: a 422 deadline_too_short naming the minimum (from the settings),
    on a submit, an estimate and a user batch's defaults; nothing is stored."""
    image, _ = scene_png(2010)
    flex_min = int(api.settings.flex_reserve_s) + 1
    batch_min = int(api.settings.batch_gather_s + api.settings.batch_poll_s
                    + api.settings.batch_sync_reserve_s)  # fmt: skip
    with api.client() as client:
        refused = {
            "flex": [
                submit(client, image, task="caption", model=MODEL,
                       options={"tier": "flex", "deadline_s": flex_min - 1}),
                _estimate(client, image, MODEL, tier="flex", deadline_s=60),
            ],
            "batch": [
                submit(client, image, task="caption", model=MODEL,
                       options={"tier": "batch", "deadline_s": batch_min - 1}),
                client.post("/v1/batches", json={
                    "name": "too-short", "task": "caption", "model": MODEL,
                    "options": {"tier": "batch", "deadline_s": 120},
                }),
            ],
        }  # fmt: skip
        flex_ok = _estimate(client, image, MODEL, tier="flex", deadline_s=flex_min)
        batch_ok = _estimate(client, image, MODEL, tier="batch", deadline_s=batch_min)
    for tier, responses in refused.items():
        minimum = flex_min if tier == "flex" else batch_min
        for response in responses:
            assert response.status_code == 422, response.text
            error = response.json()["error"]
            assert error["code"] == "deadline_too_short", error
            assert f"Tier {tier} needs deadline_s of at least {minimum} s" in error["message"]
    assert flex_ok.raise_for_status().json()["tier"] == "flex"
    assert batch_ok.raise_for_status().json()["tier"] == "batch"


def test_deadline_s_must_be_a_whole_number(api: InProcessApi) -> None:
    image, _ = scene_png(2011)
    with api.client() as client:
        answers = [
            _estimate(client, image, MODEL, tier="auto", deadline_s=bad) for bad in (True, 1.5e3)
        ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_options"
        assert "deadline_s: Input should be a valid integer" in error["message"]
