"""Job state changes on a real (SQLite) database created by the migrations."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.db import make_engine, make_session_factory
from visionq.models.jobs import (
    InvalidCursorError,
    NewInput,
    cancel_job,
    create_job,
    get_job,
    list_jobs,
)
from visionq.models.keys import authenticate, create_key, revoke_key
from visionq.models.leases import (
    Claim,
    claim_job,
    jobs_to_send,
    mark_sent,
    mark_unsent,
    open_attempt,
)
from visionq.models.migrate import current_revision, upgrade
from visionq.models.outcomes import complete_job, fail_job
from visionq.models.tables import ApiKey


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    assert current_revision(url) is not None
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def _new_job(sessions: sessionmaker[Session], tenant: str = "t") -> str:
    with sessions.begin() as session:
        job = create_job(
            session,
            tenant=tenant,
            task="caption",
            model="gemini-2.5-flash",
            prompt=None,
            labels=None,
            options={},
            inputs=[NewInput("ab" * 32, "image/png", 10, 20, 30)],
        )
        return job.id


def _claim(session: Session, job_id: str, *, lease_s: float = 60.0) -> Claim | None:
    return claim_job(session, job_id, lease_s=lease_s, max_deliveries=3)


def test_a_finished_job_is_never_claimed_or_finished_again(sessions: sessionmaker[Session]) -> None:
    job_id = _new_job(sessions)
    with sessions.begin() as session:
        # A lease of -1 s has lapsed at once: as if the first worker died.
        first = _claim(session, job_id, lease_s=-1)
    assert first is not None and first.attempt_number == 1
    with sessions.begin() as session:
        # The redelivered message: the job is claimed again under a new lease.
        second = _claim(session, job_id)
    assert second is not None and second.attempt_number == 2
    assert second.lease_token != first.lease_token
    with sessions.begin() as session:
        # The presumed-dead first worker is fenced off: it can neither finish nor retry.
        assert not complete_job(
            session, job_id, result={"text": "x"}, usage=None, model_version="m",
            lease_token=first.lease_token,
        )  # fmt: skip
        assert open_attempt(session, first) is None
        assert complete_job(
            session, job_id, result={"text": "a"}, usage=None, model_version="m",
            lease_token=second.lease_token,
        )  # fmt: skip
    with sessions.begin() as session:
        assert _claim(session, job_id) is None
        assert not complete_job(
            session, job_id, result={"text": "b"}, usage=None, model_version=None
        )
        assert not fail_job(session, job_id, code="x", message="y")
    with sessions() as session:
        job = get_job(session, tenant="t", job_id=job_id)
        assert job is not None
        assert (job.status, job.result, job.attempt_count) == ("succeeded", {"text": "a"}, 2)
        assert [(a.number, a.outcome) for a in job.attempts] == [(1, "lost"), (2, "running")]


def test_a_live_lease_is_not_claimed_twice(sessions: sessionmaker[Session]) -> None:
    job_id = _new_job(sessions)
    with sessions.begin() as session:
        assert _claim(session, job_id) is not None
    with sessions.begin() as session:
        assert _claim(session, job_id) is None  # a duplicate message while the worker lives


def test_a_job_that_keeps_killing_its_worker_ends_failed(sessions: sessionmaker[Session]) -> None:
    job_id = _new_job(sessions)
    for _ in range(3):
        with sessions.begin() as session:
            assert claim_job(session, job_id, lease_s=-1, max_deliveries=3) is not None
    with sessions.begin() as session:
        assert claim_job(session, job_id, lease_s=60, max_deliveries=3) is None
    with sessions() as session:
        job = get_job(session, tenant="t", job_id=job_id)
        assert job is not None
        assert (job.status, job.error_code, job.deliveries) == ("failed", "worker_lost", 4)
        assert [a.outcome for a in job.attempts] == ["lost"] * 3


def test_the_sweeper_finds_unsent_stale_and_lapsed_jobs(sessions: sessionmaker[Session]) -> None:
    sent, unsent, lapsed, live = (_new_job(sessions) for _ in range(4))
    with sessions.begin() as session:
        mark_unsent(session, unsent)
        assert _claim(session, lapsed, lease_s=0) is not None
        assert _claim(session, live) is not None
    with sessions() as session:
        assert {j.id for j in jobs_to_send(session, requeue_after_s=3600)} == {unsent, lapsed}
        # A message older than requeue_after_s may have been lost with Redis.
        assert {j.id for j in jobs_to_send(session, requeue_after_s=-1)} == {sent, unsent, lapsed}
    with sessions.begin() as session:
        mark_sent(session, [unsent, lapsed])
    with sessions() as session:
        assert jobs_to_send(session, requeue_after_s=3600) == []


def test_cancel_only_acts_on_active_jobs_of_the_tenant(sessions: sessionmaker[Session]) -> None:
    job_id = _new_job(sessions)
    with sessions.begin() as session:
        assert not cancel_job(session, tenant="other", job_id=job_id)
        assert cancel_job(session, tenant="t", job_id=job_id)
        assert not cancel_job(session, tenant="t", job_id=job_id)
    with sessions.begin() as session:
        assert _claim(session, job_id) is None


def test_listing_pages_newest_first(sessions: sessionmaker[Session]) -> None:
    ids = [_new_job(sessions) for _ in range(5)]
    _new_job(sessions, tenant="someone-else")
    seen: list[str] = []
    cursor = None
    with sessions() as session:
        while True:
            page, cursor = list_jobs(session, tenant="t", limit=2, cursor=cursor)
            seen += [job.id for job in page]
            if cursor is None:
                break
        with pytest.raises(InvalidCursorError):
            list_jobs(session, tenant="t", cursor="not-a-cursor")
    assert seen == list(reversed(ids))


def test_keys_are_stored_hashed_and_can_be_revoked(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        created = create_key(session, name="ci", tenant="acme")
    with sessions.begin() as session:
        key = authenticate(session, created.secret)
        assert key is not None and (key.id, key.tenant) == (created.id, "acme")
        stored = session.get(ApiKey, created.id)
        assert stored is not None and created.secret not in (stored.secret_hash, stored.prefix)
        assert authenticate(session, created.secret + "x") is None
        assert revoke_key(session, created.id)
    with sessions() as session:
        assert authenticate(session, created.secret) is None


def test_migrations_create_exactly_the_models_schema(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from visionq.models.tables import Base

    url = f"sqlite:///{tmp_path / 'schema.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_upload_claims_are_exclusive_and_fenced(sessions: sessionmaker[Session]) -> None:
    from datetime import timedelta

    from visionq.models.files import claim_upload, find_file, keep_claim, record_upload

    args = {
        "identity": "p",
        "sha256": "cd" * 32,
        "mime_type": "image/png",
        "size_bytes": 1,
        "margin": timedelta(hours=1),
        "stale_after": timedelta(seconds=0),
    }
    with sessions.begin() as session:
        first = claim_upload(session, **args)  # type: ignore[arg-type]
    assert first is not None
    with sessions.begin() as session:
        # stale_after 0: the first claim looks dead and is taken over.
        second = claim_upload(session, **args)  # type: ignore[arg-type]
    assert second is not None and second != first
    with sessions.begin() as session:
        assert not keep_claim(session, identity="p", sha256="cd" * 32, token=first)
        with pytest.raises(LookupError):
            record_upload(
                session,
                identity="p",
                sha256="cd" * 32,
                name="files/a",
                uri="u1",
                state="ACTIVE",
                expires_at=None,
                token=first,
            )
    with sessions.begin() as session:
        replaced = record_upload(
            session,
            identity="p",
            sha256="cd" * 32,
            name="files/b",
            uri="u2",
            state="ACTIVE",
            expires_at=None,
            token=second,
        )
        assert replaced is None
        row = find_file(session, identity="p", sha256="cd" * 32)
        assert row is not None and (row.name, row.uri, row.claim) == ("files/b", "u2", None)
