"""`visionq gc` while the service runs: jobs submitted during collection keep their images
(SQLite and PostgreSQL, a real API and worker)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.conftest import Stack, _backend_stack
from tests.integration.helpers import Shape, draw_scene, encode, submit, wait_done
from visionq.models.blobs import BlobStore
from visionq.models.db import make_engine, make_session_factory
from visionq.models.retention import GcReport, collect
from visionq.models.settings import Settings

pytestmark = pytest.mark.integration

JOBS = 100
GRACE_S = 2.0
COLOURS = ("red", "green", "blue", "yellow")


@pytest.fixture(scope="module")
def gc_stack(
    workdir: Path, database_url: str, redis_url: str, emulator_url: str
) -> Iterator[Stack]:
    """A stack with a blob store of its own: gc here must not touch other stacks' images."""
    blob_dir = workdir / f"gc-blobs-{database_url.split(':', 1)[0]}"
    built = _backend_stack(
        "gc", workdir, database_url, redis_url, emulator_url, with_worker=True,
        extra_env={"VISIONQ_BLOB_DIR": str(blob_dir)},
    )  # fmt: skip
    yield built
    built.stop()


def images() -> list[bytes]:
    return [
        encode(draw_scene(64 + i, 48, [Shape("rectangle", COLOURS[i % 4], (4, 4, 30, 30))]), "PNG")
        for i in range(JOBS)
    ]


def test_gc_running_beside_submits_loses_no_image(gc_stack: Stack) -> None:
    blob_dir = Path(gc_stack.env["VISIONQ_BLOB_DIR"])
    blobs = BlobStore(str(blob_dir))
    datas = images()
    # The images are already stored, old and unused (as after their first jobs were
    # deleted): the case where a submit finds the blob present while gc decides about it.
    long_ago = time.time() - 3600
    for data in datas:
        blobs.put(data)
    for path in blob_dir.glob("[0-9a-f][0-9a-f]/*"):
        os.utime(path, (long_ago, long_ago))
    settings = Settings(retention_days=0)  # keep jobs: only images are at stake here
    engine = make_engine(gc_stack.env["VISIONQ_DATABASE_URL"], pool_size=2)
    sessions = make_session_factory(engine)
    reports: list[GcReport] = []
    stop = threading.Event()

    def collect_until_stopped() -> None:
        while not stop.is_set():
            reports.append(collect(settings, sessions, blobs, grace=GRACE_S))

    collector = threading.Thread(target=collect_until_stopped)
    collector.start()
    try:
        with gc_stack.client() as client, ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda data: submit(client, data, task="detect", options={"cache": False}),
                    datas,
                )
            )
            assert [answer.status_code for answer in answers] == [202] * JOBS
            jobs = [wait_done(client, answer.json()["id"]) for answer in answers]
    finally:
        stop.set()
        collector.join(60)
        engine.dispose()
    assert [job["status"] for job in jobs] == ["succeeded"] * JOBS, [
        job["error"] for job in jobs if job["status"] != "succeeded"
    ]
    assert sum(report.blobs_trashed for report in reports) > 0
    # Later runs, once everything in the trash is past its grace: every job's image is back
    # in the store, nothing it uses was deleted.
    for path in (blob_dir / "trash").glob("*"):
        sha, _, moved = path.name.partition(".")
        path.rename(path.with_name(f"{sha}.{int(moved) - 3600}"))
    engine = make_engine(gc_stack.env["VISIONQ_DATABASE_URL"], pool_size=1)
    try:
        collect(settings, make_session_factory(engine), blobs, grace=GRACE_S)
    finally:
        engine.dispose()
    for data in datas:
        sha256 = hashlib.sha256(data).hexdigest()
        assert (blob_dir / sha256[:2] / sha256).is_file()
    assert not (blob_dir / "trash").exists() or not any((blob_dir / "trash").iterdir())
