"""A worker's resources on a fresh SQLite database, for unit tests that run the pipeline
in process with a fake Gemini."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionq.models.db import make_engine, make_session_factory
from visionq.models.migrate import upgrade
from visionq.models.settings import Settings
from visionq.worker.context import WorkerContext
from visionq.worker.lifecycle import WorkerResources
from visionq.worker.watchdog import Watchdog


def worker_context(tmp_path: Path, **settings: Any) -> WorkerContext:
    """A migrated database under ``tmp_path`` and a WorkerContext on it (no Gemini key,
    fast retries); ``settings`` override the defaults. Close it when done."""
    config = Settings(
        data_dir=tmp_path, gemini_api_key=None, retry_base_s=0.01, retry_max_delay_s=0.02,
        **settings,
    )  # fmt: skip
    upgrade(config.database_url)
    built = WorkerContext.build(config)
    # A fresh engine of the test's own (the context's pool is sized for a worker).
    built.engine.dispose()
    built.engine = make_engine(config.database_url)
    built.sessions = make_session_factory(built.engine)
    return built


def worker_resources(context: WorkerContext) -> WorkerResources:
    """A process's resources around ``context`` (its watchdog on the context's database)."""
    watchdog = Watchdog(
        context.sessions, context.leases, deadline_s=context.settings.job_deadline_s
    )
    return WorkerResources(context, watchdog)
