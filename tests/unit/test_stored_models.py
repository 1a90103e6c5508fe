"""Options and estimate are models from intake to the row and back: the JSON columns dump
them once (ModelJSON) and load them as models, the stored JSON unchanged."""

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from visionq.api.schemas import JobPublic
from visionq.models.jobs import NewInput, create_job, get_job
from visionq.models.leases import claim_job
from visionq.vision.estimate import (
    CostRange,
    EconomyReport,
    Estimate,
    ImageEstimate,
    StoredEstimate,
)
from visionq.vision.tasks import JobOptions


def _estimate() -> Estimate:
    return Estimate(
        model="gemini-2.5-flash",
        images=[ImageEstimate(width=10, height=20, tokens=258)],
        text_tokens=15,
        input_tokens=273,
        output_tokens_max=1280,
        cost_usd=CostRange(min=Decimal("0.0000819"), max=Decimal("0.0032819")),
        rule="gemini-2.5-flash",
        prices_as_of=dt.date(2026, 12, 4),
        known=True,
    )


def _new_job(sessions: sessionmaker[Session], options: JobOptions, estimate: Any) -> str:
    with sessions.begin() as session:
        job = create_job(
            session, tenant="t", task="caption", model="gemini-2.5-flash", prompt=None,
            labels=None, options=options, estimate=estimate,
            inputs=[NewInput("ab" * 32, "image/png", 10, 20, 30)],
        )  # fmt: skip
        return job.id


def _raw(sessions: sessionmaker[Session], job_id: str) -> tuple[Any, Any]:
    with sessions() as session:
        row = session.execute(
            text("SELECT options, estimate FROM jobs WHERE id = :id"), {"id": job_id}
        ).one()
    return json.loads(row[0]), (json.loads(row[1]) if row[1] is not None else None)


def test_the_row_stores_json_once_and_gives_back_the_models(
    sessions: sessionmaker[Session],
) -> None:
    # cache=True is the default: given or not, it is not stored (as before the models).
    options = JobOptions.model_validate({"max_side": 512, "cache": True, "thinking_level": "low"})
    economy = EconomyReport(applied=True, tokens_saved=100, reason=None, max_side=512)
    job_id = _new_job(sessions, options, StoredEstimate.of(_estimate(), economy))
    stored_options, stored_estimate = _raw(sessions, job_id)
    assert stored_options == {"max_side": 512, "thinking_level": "LOW"}
    assert stored_estimate == {
        **_estimate().model_dump(mode="json"),
        "economy": {"applied": True, "tokens_saved": 100, "reason": None, "max_side": 512},
    }
    assert stored_estimate["cost_usd"] == {"min": "0.0000819", "max": "0.0032819"}
    with sessions.begin() as session:
        claim = claim_job(session, job_id, lease_s=60, max_deliveries=3)
    assert claim is not None
    # The worker gets the models as loaded, not dicts to validate again.
    assert isinstance(claim.job.options, JobOptions) and claim.job.options.max_side == 512
    assert isinstance(claim.job.estimate, StoredEstimate)
    assert claim.job.estimate.cost_usd is not None
    assert claim.job.estimate.cost_usd.max == Decimal("0.0032819")
    with sessions() as session:
        job = get_job(session, tenant="t", job_id=job_id)
        assert job is not None
        shown = JobPublic.of(job).model_dump(mode="json")
    assert shown["options"] == stored_options
    assert shown["estimate"] == stored_estimate


def test_an_older_estimate_missing_fields_loads_and_shows_as_stored(
    sessions: sessionmaker[Session],
) -> None:
    job_id = _new_job(sessions, JobOptions(), None)
    assert _raw(sessions, job_id) == ({}, None)
    # Written by an older version: no tier, known, rule, prices_as_of, assumptions, reason;
    # a key this version does not know.
    old = {
        "model": "gemini-2.0-flash",
        "images": [{"width": 10, "height": 20, "tokens": 258}],
        "input_tokens": 300,
        "cost_usd": {"min": "0.00003", "max": "0.0001"},
        "note": "from an older version",
    }
    with sessions.begin() as session:
        session.execute(
            text("UPDATE jobs SET estimate = :e WHERE id = :id"),
            {"e": json.dumps(old), "id": job_id},
        )
    with sessions() as session:
        job = get_job(session, tenant="t", job_id=job_id)
        assert job is not None and isinstance(job.estimate, StoredEstimate)
        assert job.estimate.input_tokens == 300 and job.estimate.reason is None
        assert JobPublic.of(job).model_dump(mode="json")["estimate"] == old
        assert JobPublic.of(job).model_dump(mode="json")["options"] == {}
