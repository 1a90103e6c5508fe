"""Logs: the API's access line (time, request id, tenant, job id, status; failures at
WARNING) and VISIONQ_LOG_FORMAT=json for every process."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import visionq.api.server as api_server
from visionq.api.app import create_app
from visionq.cli.main import app
from visionq.models.db import make_engine, make_session_factory
from visionq.models.keys import create_key
from visionq.models.logs import JsonFormatter, configure_logging, logging_config
from visionq.models.migrate import upgrade
from visionq.models.settings import get_settings


@pytest.fixture
def api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for key in list(os.environ):
        if key.startswith("VISIONQ_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("VISIONQ_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VISIONQ_REDIS_URL", "redis://127.0.0.1:1/0")  # never reached here
    url = get_settings().database_url
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    with make_session_factory(engine).begin() as session:
        secret = create_key(session, name="logs", tenant="acme").secret
    engine.dispose()
    yield secret


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "visionq.access"]


def test_the_access_line_names_request_tenant_job_and_status(
    api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="visionq.access")
    with TestClient(create_app()) as client:
        healthy = client.get("/healthz")
        missing = client.get(
            "/v1/jobs/no-such-job",
            headers={"Authorization": f"Bearer {api_key}", "X-Request-ID": "req-42"},
        )
    assert healthy.status_code == 200 and missing.status_code == 404
    assert missing.headers["X-Request-ID"] == "req-42"
    ok, failed = access_records(caplog)
    assert ok.levelno == logging.INFO and failed.levelno == logging.WARNING
    fields: dict[str, Any] = vars(failed)
    assert {k: fields[k] for k in ("request_id", "tenant", "job_id", "status", "method")} == {
        "request_id": "req-42", "tenant": "acme", "job_id": "no-such-job", "status": 404,
        "method": "GET",
    }  # fmt: skip
    assert failed.getMessage().startswith('testclient "GET /v1/jobs/no-such-job" 404 ')
    for text in ("request_id=req-42", "tenant=acme", "job_id=no-such-job"):
        assert text in failed.getMessage()
    assert healthy.headers["X-Request-ID"] == vars(ok)["request_id"]


def test_json_lines_parse_and_carry_the_fields() -> None:
    record = logging.LogRecord(
        "visionq.access", logging.WARNING, __file__, 1, "GET %s", ("/x",), None
    )
    record.__dict__.update(request_id="r1", tenant="acme", job_id="j1", status=404)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "WARNING" and entry["message"] == "GET /x"
    assert {k: entry[k] for k in ("request_id", "tenant", "job_id", "status")} == {
        "request_id": "r1", "tenant": "acme", "job_id": "j1", "status": 404
    }  # fmt: skip
    assert entry["time"].endswith("+00:00")


def test_configure_logging_json_writes_one_object_per_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("json")
        logging.getLogger("visionq.test").warning("job %s failed", "j1", extra={"job_id": "j1"})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("visionq.test").exception("crashed")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["job_id"] == "j1" and first["message"] == "job j1 failed"
    assert "RuntimeError: boom" in second["exception"]


def test_visionq_api_logs_in_the_configured_format(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs, app=app))
    monkeypatch.setenv("VISIONQ_LOG_FORMAT", "json")
    api_server.run(host="127.0.0.1", port=8000, workers=1)
    assert seen["log_config"] == logging_config("json")
    assert seen["access_log"] is False  # ours replaces uvicorn's
    assert seen["log_config"]["formatters"]["visionq"]["()"].endswith("JsonFormatter")


def test_the_emulator_and_the_worker_use_the_same_setup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import visionq.emulator.server
    import visionq.models.logs
    from visionq.worker.celery_app import app as celery_app

    monkeypatch.setenv("VISIONQ_LOG_FORMAT", "json")
    emulator_calls: list[dict[str, Any]] = []
    monkeypatch.setattr(visionq.emulator.server, "run", lambda *a, **kw: emulator_calls.append(kw))
    worker_formats: list[str] = []
    monkeypatch.setattr(
        visionq.models.logs, "configure_logging", lambda f, *a: worker_formats.append(f)
    )
    monkeypatch.setattr(celery_app, "worker_main", lambda argv: None)
    monkeypatch.setattr("visionq.cli.main.prepare_metrics", lambda role: None)
    monkeypatch.setattr("visionq.cli.main.serve_worker_metrics", lambda *args, **kwargs: None)
    runner = CliRunner()
    assert runner.invoke(app, ["emulator", "--port", "0"]).exit_code == 0
    assert runner.invoke(app, ["worker"]).exit_code == 0
    assert emulator_calls[0]["log_config"] == logging_config("json")
    assert worker_formats == ["json"]


def _run_asgi(app: Any, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Call an ASGI app once with these incoming messages; returns what it sent."""
    import asyncio

    sent: list[dict[str, Any]] = []
    incoming = list(messages)

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/jobs", "headers": [],
             "client": ("10.0.0.1", 1234)}  # fmt: skip
    with contextlib.suppress(RuntimeError):
        asyncio.run(app(scope, receive, send))
    return sent


def test_a_client_gone_before_the_answer_is_499_at_info(caplog: pytest.LogCaptureFixture) -> None:
    """Not a 500 WARNING: nothing failed on our side when the client hung up first."""
    from visionq.api.accesslog import AccessLog

    async def reads_until_gone(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def crashes(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("a bug")

    caplog.set_level(logging.INFO, logger="visionq.access")
    _run_asgi(
        AccessLog(reads_until_gone), [{"type": "http.request", "body": b"x", "more_body": True}]
    )
    _run_asgi(AccessLog(crashes), [])
    gone, crashed = access_records(caplog)
    assert vars(gone)["status"] == 499 and gone.levelno == logging.INFO
    assert vars(gone)["client_closed"] is True
    assert " 499 " in gone.getMessage() and "client closed request" in gone.getMessage()
    # An error that escaped before any answer is still a 500 at WARNING.
    assert vars(crashed)["status"] == 500 and crashed.levelno == logging.WARNING
    assert vars(crashed)["client_closed"] is False


def test_a_decoded_path_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """A path's %0A, %00 or escape bytes are written escaped: one request, one log line,
    text a grep reads (the path and job id come decoded from the client)."""
    import asyncio

    from visionq.api.accesslog import AccessLog, printable

    async def answers(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def nothing() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def ignore(message: dict[str, Any]) -> None:
        pass

    caplog.set_level(logging.INFO, logger="visionq.access")
    forged = "/v1/jobs/abc\n2026-12-05 FAKE ERROR\x00\x1b[31m\\"
    scope = {"type": "http", "method": "GET", "path": forged, "headers": [],
             "path_params": {"job_id": "abc\nFAKE2"}, "client": ("10.0.0.1", 1)}  # fmt: skip
    asyncio.run(AccessLog(answers)(scope, nothing, ignore))
    (record,) = access_records(caplog)
    line = record.getMessage()
    assert "\n" not in line and "\x00" not in line and "\x1b" not in line
    assert "/v1/jobs/abc\\n2026-12-05 FAKE ERROR\\x00\\x1b[31m\\\\" in line
    assert "job_id=abc\\nFAKE2" in line and vars(record)["path"] == printable(forged)
    assert printable("/v1/batches/ünï 😀") == "/v1/batches/ünï 😀"


def test_a_job_id_with_control_characters_is_shown_escaped() -> None:
    """The 404 of /v1/jobs/abc%0AFAKE repeats the id escaped, not with its newline."""
    from visionq.models.jobrefs import not_found_message

    assert not_found_message("abc\nFAKE\x00") == "No job abc\\nFAKE\\x00 for this tenant."
    assert not_found_message("nope") == "No job nope for this tenant."
