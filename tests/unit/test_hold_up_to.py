"""models.outcomes.hold_up_to (a batch-lane job sent back to the sync lane raises its
budget hold to its standard-price estimate): the difference is held once, a redelivered
run holds nothing more, and a budget that cannot take it refuses. SQLite, real migrations."""

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.budgets import budget_state, reserve, set_budget
from visionq.models.jobs import NewInput, create_job
from visionq.models.leases import claim_job
from visionq.models.outcomes import hold_up_to
from visionq.models.tables import JOBS
from visionq.vision.tasks import JobOptions

TENANT = "t"


def _held_job(sessions: sessionmaker[Session], budget: int, hold: int) -> str:
    """A job held ``hold`` at submit (its batch price) under a daily cap of ``budget``."""
    with sessions.begin() as session:
        set_budget(session, tenant=TENANT, daily_nusd=budget, monthly_nusd=None)
    with sessions.begin() as session:
        assert reserve(session, tenant=TENANT, amount_nusd=hold)
        job = create_job(
            session, tenant=TENANT, task="caption", model="gemini-2.5-flash", prompt=None,
            labels=None, options=JobOptions(), reserved_nusd=hold,
            inputs=[NewInput("ab" * 32, "image/png", 10, 20, 30)],
        )  # fmt: skip
        return job.id


def _holds(sessions: sessionmaker[Session], job_id: str) -> tuple[int, int]:
    with sessions() as session:
        job = session.scalar(select(JOBS.c.reserved_nusd).where(JOBS.c.id == job_id))
        return int(job or 0), budget_state(session, TENANT).reserved_nusd


def test_the_difference_is_held_once_across_redeliveries(sessions: sessionmaker[Session]) -> None:
    job_id = _held_job(sessions, budget=1000, hold=300)
    for _delivery in range(2):  # the second: a redelivery after the first worker died
        with sessions.begin() as session:
            claim = claim_job(session, job_id, lease_s=-1, max_deliveries=5)
            assert claim is not None
            assert hold_up_to(session, job_id=job_id, lease_token=claim.lease_token,
                              tenant=TENANT, target_nusd=600)  # fmt: skip
        assert _holds(sessions, job_id) == (600, 600)


def test_a_budget_that_cannot_take_the_difference_refuses(sessions: sessionmaker[Session]) -> None:
    job_id = _held_job(sessions, budget=500, hold=300)
    with sessions.begin() as session:
        claim = claim_job(session, job_id, lease_s=60, max_deliveries=5)
        assert claim is not None
        refused = not hold_up_to(session, job_id=job_id, lease_token=claim.lease_token,
                                 tenant=TENANT, target_nusd=600)  # fmt: skip
        session.rollback()
    assert refused
    assert _holds(sessions, job_id) == (300, 300)
