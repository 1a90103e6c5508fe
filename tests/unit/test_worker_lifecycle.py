"""The worker's resources are opened when its process starts and closed when it stops
(issue 18, item 6): database engine, Redis, Gemini SDK client, lease renewals, watchdog
and sweeper, each closed once."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
import redis
from celery import signals
from sqlalchemy import Engine

from tests.unit.workercontext import worker_context, worker_resources
from visionq.models.settings import Settings
from visionq.worker import tasks
from visionq.worker.gemini import GeminiCaller
from visionq.worker.leasekeeper import LeaseKeeper
from visionq.worker.lifecycle import WorkerLifecycle, WorkerResources
from visionq.worker.watchdog import Watchdog


class _Recorder:
    """Stands for any resource: records that it was closed, in a shared log."""

    def __init__(self, name: str, closed: list[str]) -> None:
        self.name, self._closed = name, closed

    def close(self) -> None:
        self._closed.append(self.name)

    def dispose(self) -> None:  # an Engine is closed by dispose()
        self._closed.append(self.name)


def _faked(tmp_path: Path, closed: list[str]) -> WorkerResources:
    """Real resources on a test database whose closeable parts are recording fakes."""
    built = worker_context(tmp_path, rate_limits={"*": {"rpm": 10}})
    assert built.redis is not None  # rate limits configured: the limiter has its Redis
    built.close()  # the real ones, before the fakes replace them
    built.engine = cast(Engine, _Recorder("engine", closed))
    built.redis = cast(redis.Redis, _Recorder("redis", closed))
    built.gemini = cast(GeminiCaller, _Recorder("gemini client", closed))
    built.leases = cast(LeaseKeeper, _Recorder("lease renewals", closed))
    resources = worker_resources(built)
    resources.watchdog = cast(Watchdog, _Recorder("watchdog", closed))
    return resources


def test_start_then_stop_closes_each_resource_once(tmp_path: Path) -> None:
    closed: list[str] = []
    opened: list[str] = []

    def open_resources(settings: Settings) -> WorkerResources:
        opened.append("resources")
        return _faked(tmp_path, closed)

    lifecycle = WorkerLifecycle(
        open_resources, open_sweeper=lambda settings: _Recorder("sweeper", closed)
    )
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(RuntimeError, match="not open in this process"):
        _ = lifecycle.resources
    lifecycle.open(settings)
    lifecycle.open(settings)  # worker_init then worker_process_init (solo): opened once
    lifecycle.start_sweeper(settings)
    assert opened == ["resources"] and closed == []
    lifecycle.close()
    assert closed == [
        "sweeper", "watchdog", "lease renewals", "gemini client", "redis", "engine",
    ]  # fmt: skip
    lifecycle.close()  # worker_shutdown after worker_process_shutdown: nothing twice
    assert len(closed) == 6
    with pytest.raises(RuntimeError, match="not open in this process"):
        _ = lifecycle.resources


def test_the_celery_signals_open_and_close_the_process_resources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """worker_init opens them for the threads pool (not prefork: its children do, on
    worker_process_init); worker_shutdown closes them and stops the sweeper."""
    closed: list[str] = []
    lifecycle = WorkerLifecycle(lambda settings: _faked(tmp_path, closed))
    monkeypatch.setattr(tasks, "WORKER", lifecycle)
    monkeypatch.setenv("VISIONQ_DATA_DIR", str(tmp_path))

    class _Worker:
        def __init__(self, pool_cls: Any) -> None:
            self.pool_cls = pool_cls

    signals.worker_init.send(sender=_Worker("prefork"))
    with pytest.raises(RuntimeError):
        _ = tasks.PipelineTask().context
    signals.worker_init.send(sender=_Worker("threads"))
    assert tasks.PipelineTask().context is lifecycle.resources.context
    signals.worker_shutdown.send(sender=None)
    assert sorted(closed) == ["engine", "gemini client", "lease renewals", "redis", "watchdog"]


def test_the_batch_lane_starts_once_on_ready_and_stops_on_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """worker_ready starts the Gemini Batch lane once (also with VISIONQ_BATCH_LANE_ENABLED
    false: it then only follows the Gemini batches already sent until they end);
    worker_shutting_down stops it before the jobs' resources close."""
    closed: list[str] = []
    started: list[str] = []

    def open_lane(settings: Settings) -> _Recorder:
        started.append("lane")
        return _Recorder("batch lane", closed)

    lifecycle = WorkerLifecycle(
        lambda settings: _faked(tmp_path, closed), open_batch_lane=open_lane
    )
    monkeypatch.setattr(tasks, "WORKER", lifecycle)
    monkeypatch.setenv("VISIONQ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VISIONQ_SWEEPER_ENABLED", "false")
    monkeypatch.setenv("VISIONQ_BATCH_LANE_ENABLED", "false")
    tasks._start_batch_lane()
    assert started == ["lane"]
    monkeypatch.setenv("VISIONQ_BATCH_LANE_ENABLED", "true")
    tasks._start_batch_lane()
    tasks._start_batch_lane()
    assert started == ["lane"]
    signals.worker_shutting_down.send(sender=None, sig="TERM", how="warm", exitcode=0)
    assert closed == ["batch lane"]
    lifecycle.close()
    assert closed == ["batch lane"]
