"""Per-process resources of a worker: database, blob store and Gemini client."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.blobs import BlobStore
from models.db import make_engine, make_session_factory
from models.settings import Settings
from vision.costing import CostBook
from worker.files import FilePolicy, UploadCache
from worker.gemini import GeminiCaller, gemini_identity, make_client


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    gemini: GeminiCaller
    uploads: UploadCache
    costs: CostBook

    @classmethod
    def build(cls, settings: Settings) -> WorkerContext:
        """Open every resource a job needs."""
        rules, prices = settings.cost_overrides()
        engine = make_engine(settings.database_url)
        sessions = make_session_factory(engine)
        blobs = BlobStore(settings.blob_dir)
        gemini = GeminiCaller(make_client(settings))
        uploads = UploadCache(
            sessions=sessions,
            gemini=gemini,
            blobs=blobs,
            identity=gemini_identity(settings),
            policy=FilePolicy.from_settings(settings),
        )
        return cls(
            settings=settings, engine=engine, sessions=sessions, blobs=blobs, gemini=gemini,
            uploads=uploads, costs=CostBook.load(token_rules=rules, prices=prices),
        )  # fmt: skip

    def close(self) -> None:
        self.gemini.close()
        self.engine.dispose()
