"""The worker's hot path does no needless work: a caption job on a real (SQLite) database
and blob store, with Gemini faked, counting database statements, blob reads and decodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import event

from visionq.emulator.shapes import encode, random_scene
from visionq.models.blobs import BlobStore
from visionq.models.budgets import reserve
from visionq.models.db import make_engine, make_session_factory
from visionq.models.jobs import NewInput, create_job, get_job
from visionq.models.migrate import upgrade
from visionq.models.settings import Settings
from visionq.worker.context import WorkerContext
from visionq.worker.gemini import GeminiAnswer, GeminiCaller
from visionq.worker.pipeline import run_job


class FakeGemini(GeminiCaller):
    """Answers every call at once (the collaborator this unit test stands in for)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.calls = 0

    def generate(
        self, *, model: str, contents: list[Any], config: dict[str, Any], **tier: Any
    ) -> GeminiAnswer:
        self.calls += 1
        return GeminiAnswer(text="a scene", usage=None, model_version="fake", finish_reason="STOP")


class CountingBlobs(BlobStore):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reads = 0

    def get(self, sha256: str) -> bytes:
        self.reads += 1
        return super().get(sha256)


@pytest.fixture
def context(tmp_path: Path) -> Iterator[WorkerContext]:
    settings = Settings(data_dir=tmp_path, gemini_api_key=None)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    built = WorkerContext.build(settings)
    built.engine.dispose()
    built.engine, built.sessions = engine, sessions
    built.blobs = CountingBlobs(settings.blob_dir)
    built.gemini = FakeGemini()
    yield built
    built.close()


def _queued_caption(context: WorkerContext) -> str:
    image, _ = random_scene(3, width=640, height=480)
    data = encode(image, "PNG")
    sha = context.blobs.put(data)
    with context.sessions.begin() as session:
        assert reserve(session, tenant="t", amount_nusd=0)  # as the API does at submit
        job = create_job(
            session, tenant="t", task="caption", model="gemini-2.5-flash", prompt=None,
            labels=None, options={}, inputs=[NewInput(sha, "image/png", 640, 480, len(data))],
        )  # fmt: skip
        return job.id


def test_a_job_costs_two_transactions_one_blob_read_and_no_decode(
    context: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = _queued_caption(context)
    statements: list[str] = []
    event.listen(context.engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_: statements.append(sql.split()[0]))  # fmt: skip
    decodes = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: decodes.append(1) or real_open(*a, **k))

    assert run_job(context, job_id) == "succeeded"

    # Claim (UPDATE ... RETURNING the job, SELECT its inputs, INSERT attempt), then the end
    # (transports, job, budget, attempt): 7 statements, no per-job SELECT of attempts.
    assert statements == ["UPDATE", "SELECT", "INSERT", "UPDATE", "UPDATE", "UPDATE", "UPDATE"]
    assert isinstance(context.blobs, CountingBlobs) and context.blobs.reads == 1
    assert decodes == []  # the image was checked at submit; the worker sends its bytes
    with context.sessions() as session:
        job = get_job(session, tenant="t", job_id=job_id)
        assert job is not None and job.status == "succeeded"
        assert job.inputs[0].transport == "inline" and job.started_at is not None


def test_the_statements_of_a_job_are_built_once_not_per_job(context: WorkerContext) -> None:
    # Building a statement and its cache key costs more CPU than SQLite takes to run it:
    # the second job must execute the very statement objects the first one did.
    first, second = _queued_caption(context), _queued_caption(context)
    executed: list[object] = []
    event.listen(context.engine, "before_execute",
                 lambda _c, element, *_: executed.append(element))  # fmt: skip

    assert run_job(context, first) == "succeeded"
    of_first = list(executed)
    executed.clear()
    assert run_job(context, second) == "succeeded"

    assert len(of_first) == 7
    assert [id(element) for element in executed] == [id(element) for element in of_first]


def test_the_sdk_client_and_engine_are_made_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import visionq.worker.context
    from visionq.worker import tasks
    from visionq.worker.lifecycle import WorkerLifecycle

    made: list[str] = []
    real_engine, real_client = (
        visionq.worker.context.make_engine,
        visionq.worker.context.make_client,
    )
    monkeypatch.setattr(visionq.worker.context, "make_engine",
                        lambda *a, **k: made.append("engine") or real_engine(*a, **k))  # fmt: skip
    monkeypatch.setattr(visionq.worker.context, "make_client",
                        lambda *a, **k: made.append("client") or real_client(*a, **k))  # fmt: skip
    monkeypatch.setenv("VISIONQ_DATA_DIR", str(tmp_path))
    lifecycle = WorkerLifecycle()
    monkeypatch.setattr(tasks, "WORKER", lifecycle)
    # The worker's start signals open the process's resources (threads pool: worker_init;
    # solo also sends worker_process_init): once.
    tasks._open_worker(sender=SimpleNamespace(pool_cls="threads"))
    tasks._open_pool_process()
    contexts = {id(tasks.PipelineTask().context) for _ in range(5)}
    assert len(contexts) == 1 and made == ["engine", "client"]
    lifecycle.close()
