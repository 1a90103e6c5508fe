"""Job ids: a full id or a unique prefix names a job (issue 17, bug 4); many jobs by id."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from visionq.api.errors import ApiError
from visionq.api.jobids import job_id_of
from visionq.models.db import make_engine, make_session_factory
from visionq.models.jobrefs import JobIdError, get_jobs, resolve_job_id
from visionq.models.jobs import NewInput, create_job
from visionq.models.migrate import upgrade

# Two ids sharing their first 8 characters (and more), one apart.
TWINS = ("1234abcd-0000-4000-8000-000000000001", "1234abcd-0000-4000-8000-000000000002")
LONER = "9876fedc-0000-4000-8000-000000000003"


@pytest.fixture
def sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    ids = iter([*TWINS, LONER, "1234abcd-ffff-4000-8000-000000000004"])
    monkeypatch.setattr("visionq.models.jobs.uuid.uuid4", lambda: uuid.UUID(next(ids)))
    with factory.begin() as session:
        for tenant in ("t", "t", "t", "other"):
            create_job(
                session, tenant=tenant, task="caption", model="m", prompt=None, labels=None,
                options={}, inputs=[NewInput("ab" * 32, "image/png", 10, 20, 30)],
            )  # fmt: skip
    yield factory
    engine.dispose()


def _resolve(sessions: sessionmaker[Session], job_id: str, tenant: str = "t") -> str:
    with sessions() as session:
        return resolve_job_id(session, tenant=tenant, job_id=job_id)


def _error(sessions: sessionmaker[Session], job_id: str) -> JobIdError:
    with pytest.raises(JobIdError) as raised:
        _resolve(sessions, job_id)
    return raised.value


def test_a_full_id_names_its_job(sessions: sessionmaker[Session]) -> None:
    assert _resolve(sessions, LONER) == LONER
    assert _resolve(sessions, LONER.upper()) == LONER


def test_a_unique_prefix_names_its_job(sessions: sessionmaker[Session]) -> None:
    assert _resolve(sessions, LONER[:8]) == LONER
    assert _resolve(sessions, TWINS[1][:-1] + "2") == TWINS[1]
    # The other tenant's 1234abcd-ffff job does not make 1234abcd-f... ambiguous for "t",
    # nor is it found for "t".
    assert _error(sessions, "1234abcd-ffff").code == "job_not_found"


def test_an_ambiguous_prefix_lists_its_candidates(sessions: sessionmaker[Session]) -> None:
    error = _error(sessions, "1234abcd")
    assert error.code == "ambiguous_job_id"
    assert error.candidates == list(TWINS)
    assert all(job_id in error.message for job_id in TWINS)


def test_a_short_prefix_is_refused_with_the_minimum(sessions: sessionmaker[Session]) -> None:
    error = _error(sessions, "9876fed")
    assert error.code == "invalid_job_id" and "at least 8" in error.message


@pytest.mark.parametrize(
    "job_id", ["00000000", "00000000-0000-4000-8000-000000000000", "not-a-job-id", "9876%", "_"]
)
def test_unknown_ids_and_non_ids_are_not_found(
    sessions: sessionmaker[Session], job_id: str
) -> None:
    assert _error(sessions, job_id).code == "job_not_found"


@pytest.mark.parametrize(
    ("job_id", "status", "code"),
    [
        ("1234abcd", 409, "ambiguous_job_id"),
        ("1234", 422, "invalid_job_id"),
        ("abcdef01", 404, "job_not_found"),
    ],
)
def test_the_api_answers_each_case_with_its_status(
    sessions: sessionmaker[Session], job_id: str, status: int, code: str
) -> None:
    with sessions() as session, pytest.raises(ApiError) as raised:
        job_id_of(session, "t", job_id)
    assert (raised.value.status, raised.value.code) == (status, code)


def test_many_jobs_by_id_in_the_order_asked(sessions: sessionmaker[Session]) -> None:
    other = "1234abcd-ffff-4000-8000-000000000004"
    with sessions() as session:
        jobs = get_jobs(session, tenant="t", job_ids=[LONER, "nope", other, TWINS[0], LONER])
    assert [job.id for job in jobs] == [LONER, TWINS[0]]
