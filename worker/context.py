"""Per-process resources of a worker: database, blob store and Gemini client."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.blobs import BlobStore
from models.db import make_engine, make_session_factory
from models.settings import Settings
from worker.gemini import GeminiCaller, make_client


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    gemini: GeminiCaller

    @classmethod
    def build(cls, settings: Settings) -> WorkerContext:
        """Open every resource a job needs."""
        engine = make_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_session_factory(engine),
            blobs=BlobStore(settings.blob_dir),
            gemini=GeminiCaller(make_client(settings)),
        )

    def close(self) -> None:
        self.gemini.close()
        self.engine.dispose()
