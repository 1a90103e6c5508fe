"""The API app in process, for route tests that need no worker.

``create_app`` behind FastAPI's TestClient, on a migrated SQLite database of its own and a
real Redis (a database of the session's server, flushed first): no process to start, no
socket, so a route test costs milliseconds. Nothing of ours is faked; what needs the
served app (raw sockets, a worker) stays on the process stack (conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import Result
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

import visionq.cli.common as cli_common
from visionq.api.app import create_app
from visionq.cli.main import app as cli_app
from visionq.client import VisionqClient
from visionq.models.db import make_engine, make_session_factory
from visionq.models.keys import create_key
from visionq.models.migrate import upgrade
from visionq.models.settings import Settings


class UnmanagedClient(TestClient):
    """A TestClient on an app whose lifespan ``in_process_api`` already runs: entering it
    (``with api.client() as client``) must not start and stop the app's resources again."""

    def __enter__(self) -> UnmanagedClient:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


@dataclass
class InProcessApi:
    """The app, its settings, its database engine and one API key per tenant."""

    app: FastAPI
    settings: Settings
    engine: Engine
    keys: dict[str, str]

    def client(self, tenant: str | None = "acme", **headers: str) -> TestClient:
        """A client sending ``tenant``'s key (none when ``tenant`` is None)."""
        auth = {"Authorization": f"Bearer {self.keys[tenant]}"} if tenant else {}
        return UnmanagedClient(self.app, headers=auth | headers)


@contextmanager
def in_process_api(
    data_dir: Path, redis_url: str, tenants: tuple[str, ...], **overrides: Any
) -> Iterator[InProcessApi]:
    """The app with its resources open, on ``data_dir``'s SQLite and ``redis_url`` (a
    database of its own: it is flushed), with a key per tenant; settings ``overrides``."""
    redis.Redis.from_url(redis_url).flushdb()
    settings = Settings(data_dir=data_dir, redis_url=redis_url, gemini_api_key=None, **overrides)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url, pool_size=2)
    with make_session_factory(engine).begin() as session:
        keys = {
            tenant: create_key(session, name=tenant, tenant=tenant).secret for tenant in tenants
        }
    app = create_app(settings)
    try:
        with TestClient(app):  # runs the lifespan once: resources open until the end
            yield InProcessApi(app=app, settings=settings, engine=engine, keys=keys)
    finally:
        engine.dispose()


def in_process_cli(api: InProcessApi, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `visionq ARGS` in process (typer's CliRunner), its client the real VisionqClient
    with the app's TestClient (an httpx.Client) as its HTTP client, as ``api``'s one tenant."""
    (tenant,) = api.keys

    def client(url: str, api_key: str | None) -> VisionqClient:
        made = VisionqClient(url, api_key)
        made._http.close()
        made._http = api.client(tenant)
        return made

    monkeypatch.setattr(cli_common, "VisionqClient", client)
    env = {"COLUMNS": "100", "VISIONQ_API_KEY": api.keys[tenant], "VISIONQ_URL": "http://api"}

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli_app, list(args), env=env)

    return run
