"""`visionq gc`: old finished jobs, expired idempotency keys and unused images go; what a
job still uses (even one submitted while gc runs) stays readable. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from tests.services import postgres_bindir, postgres_server, redis_server
from visionq.models import retention
from visionq.models.blobs import BlobStore
from visionq.models.db import make_engine, make_session_factory
from visionq.models.migrate import upgrade
from visionq.models.retention import GcRunningError, collect, gc_lock
from visionq.models.settings import Settings
from visionq.models.tables import Attempt, IdempotencyKey, Job, JobInput, utcnow

GRACE_S = 600.0


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL server binaries not installed")
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gc.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    upgrade(url)
    engine = make_engine(url, pool_size=2)
    factory = make_session_factory(engine)
    with factory.begin() as session:  # the PostgreSQL database is shared by the module
        for table in (IdempotencyKey, Attempt, JobInput, Job):
            session.query(table).delete()
    yield factory
    engine.dispose()


def add_job(
    sessions: sessionmaker[Session],
    job_id: str,
    *,
    finished_days_ago: float | None,
    inputs: list[str],
    masks: tuple[str, ...] = (),
    key_age: timedelta | None = None,
) -> None:
    now = utcnow()
    finished = None if finished_days_ago is None else now - timedelta(days=finished_days_ago)
    objects = [{"label": "x", "mask_sha256": sha} for sha in masks]
    job = Job(
        id=job_id, tenant="t", task="segment" if masks else "caption", model="m",
        status="queued" if finished is None else "succeeded",
        created_at=(finished or now) - timedelta(minutes=1), finished_at=finished,
        result={"objects": objects} if masks else {"text": "a"},
        inputs=[
            JobInput(position=i, sha256=sha, mime_type="image/png", width=1, height=1,
                     byte_size=1)
            for i, sha in enumerate(inputs)
        ],
        attempts=[] if finished is None else [Attempt(number=1, outcome="succeeded")],
    )  # fmt: skip
    with sessions.begin() as session:
        session.add(job)
        if key_age is not None:
            session.flush()
            session.add(
                IdempotencyKey(
                    tenant="t", key=job_id, request_hash="h", job_id=job_id,
                    created_at=now - key_age,
                )
            )  # fmt: skip


def age(store: Path, seconds: float) -> None:
    """Make every stored blob look written ``seconds`` ago."""
    moment = time.time() - seconds
    for path in store.glob("[0-9a-f][0-9a-f]/*"):
        os.utime(path, (moment, moment))


def age_trash(store: Path, seconds: float) -> None:
    for path in (store / "trash").iterdir():
        sha, _, moved = path.name.partition(".")
        path.rename(path.with_name(f"{sha}.{int(moved) - int(seconds)}"))


def stored(store: Path) -> set[str]:
    return {path.name for path in store.glob("[0-9a-f][0-9a-f]/*")}


def test_gc_deletes_old_jobs_keys_and_unused_images_only(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, retention_days=30)
    store_dir = tmp_path / "blobs"
    blobs = BlobStore(str(store_dir))
    old_input, kept_input, queued_input, old_mask, kept_mask, _orphan = (
        blobs.put(name.encode()) for name in ("x", "y", "z", "m", "m2", "o")
    )
    add_job(sessions, "old", finished_days_ago=40, inputs=[old_input], key_age=timedelta(0))
    add_job(sessions, "old-seg", finished_days_ago=31, inputs=[kept_input], masks=(old_mask,))
    add_job(sessions, "recent", finished_days_ago=2, inputs=[kept_input],
            key_age=timedelta(days=3))  # fmt: skip
    add_job(sessions, "recent-seg", finished_days_ago=1, inputs=[kept_input], masks=(kept_mask,))
    add_job(sessions, "queued", finished_days_ago=None, inputs=[queued_input])
    age(store_dir, 2 * GRACE_S)
    fresh = blobs.put(b"just submitted, not committed yet")

    dry = collect(settings, sessions, blobs, dry_run=True, grace=GRACE_S)
    assert (dry.jobs, dry.idempotency_keys, dry.blobs_trashed) == (2, 1, 3)
    assert len(stored(store_dir)) == 7

    first = collect(settings, sessions, blobs, grace=GRACE_S)
    assert (first.jobs, first.idempotency_keys, first.blobs_trashed) == (2, 1, 3)
    with sessions() as session:
        assert set(session.scalars(select(Job.id))) == {"recent", "recent-seg", "queued"}
        assert set(session.scalars(select(JobInput.job_id))) == {"recent", "recent-seg", "queued"}
        assert set(session.scalars(select(Attempt.job_id))) == {"recent", "recent-seg"}
        assert list(session.scalars(select(IdempotencyKey.key))) == []
    assert stored(store_dir) == {kept_input, queued_input, kept_mask, fresh}

    # A job submitted while gc ran took an image gc then moved to the trash: it still
    # reads it, and the next run puts it back instead of deleting it.
    add_job(sessions, "late", finished_days_ago=None, inputs=[old_input])
    assert blobs.get(old_input) == b"x"
    age_trash(store_dir, 2 * GRACE_S)
    second = collect(settings, sessions, blobs, grace=GRACE_S)
    assert (second.jobs, second.blobs_restored, second.blobs_deleted) == (0, 1, 2)
    assert stored(store_dir) == {kept_input, queued_input, kept_mask, fresh, old_input}
    assert list((store_dir / "trash").iterdir()) == []
    assert blobs.get(old_input) == b"x"


def test_zero_days_keeps_every_job(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, retention_days=0)
    blobs = BlobStore(str(tmp_path / "blobs"))
    add_job(sessions, "ancient", finished_days_ago=3650, inputs=[blobs.put(b"a")])
    age(tmp_path / "blobs", 2 * GRACE_S)
    report = collect(settings, sessions, blobs, grace=GRACE_S)
    assert (report.jobs, report.blobs_trashed) == (0, 0)
    with sessions() as session:
        assert session.get(Job, "ancient") is not None


def test_the_default_keeps_thirty_days() -> None:
    assert Settings.model_fields["retention_days"].default == 30


def test_a_job_that_changed_after_the_select_keeps_its_inputs_attempts_and_keys(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child rows are deleted under the job's own conditions (finished and older than
    the cutoff), re-checked in the DELETE, not for every id the SELECT found: a job that
    is no longer old by then keeps them."""
    settings = Settings(data_dir=tmp_path, retention_days=30)
    blobs = BlobStore(str(tmp_path / "blobs"))
    add_job(sessions, "old", finished_days_ago=40, inputs=[blobs.put(b"a")],
            key_age=timedelta(0))  # fmt: skip
    add_job(sessions, "recent", finished_days_ago=1, inputs=[blobs.put(b"b")],
            key_age=timedelta(0))  # fmt: skip
    found = retention._candidates
    calls = 0

    def changed_meanwhile(session: Session, old: Any) -> list[str]:
        # As if "recent" had matched when the ids were read and changed before the DELETEs.
        nonlocal calls
        calls += 1
        return found(session, old) + (["recent"] if calls == 1 else [])

    monkeypatch.setattr(retention, "_candidates", changed_meanwhile)
    assert collect(settings, sessions, blobs, grace=GRACE_S).jobs == 1
    with sessions() as session:
        assert list(session.scalars(select(Job.id))) == ["recent"]
        assert list(session.scalars(select(JobInput.job_id))) == ["recent"]
        assert list(session.scalars(select(Attempt.job_id))) == ["recent"]
        assert list(session.scalars(select(IdempotencyKey.job_id))) == ["recent"]


def test_restore_of_a_blob_another_gc_already_handled_is_no_error(tmp_path: Path) -> None:
    blobs = BlobStore(str(tmp_path / "blobs"))
    sha256 = blobs.put(b"a")
    assert blobs.trash(sha256)
    ((path, _, _),) = list(blobs.trashed())
    blobs.purge(path)  # another gc deleted it for good meanwhile
    blobs.restore(path, sha256)
    assert not (tmp_path / "blobs" / sha256[:2] / sha256).exists()


def test_one_gc_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gc runs at once would trash and restore the same blobs under each other: the
    second one says another gc is running and exits 1; once the first ends, gc runs."""
    from visionq.cli.main import app

    with redis_server(tmp_path / "redis") as url:
        for key in list(os.environ):
            if key.startswith("VISIONQ_"):
                monkeypatch.delenv(key)
        monkeypatch.setenv("VISIONQ_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("VISIONQ_REDIS_URL", url)
        upgrade(Settings(data_dir=tmp_path / "data").database_url)
        runner = CliRunner()
        with gc_lock(url):
            with pytest.raises(GcRunningError), gc_lock(url):
                pass
            refused = runner.invoke(app, ["gc"])
            assert refused.exit_code == 1
            assert "another gc is running" in refused.stderr
            assert "deleted" not in refused.stdout
            # A dry run only reads: it runs beside a real one.
            assert runner.invoke(app, ["gc", "--dry-run"]).exit_code == 0
        ran = runner.invoke(app, ["gc"])
        assert ran.exit_code == 0, ran.output
        assert "deleted 0 jobs" in ran.stdout
