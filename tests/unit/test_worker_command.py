"""`visionq worker --pool`: the pools it runs, and gevent/eventlet refused with the reason."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from visionq.cli.main import WorkerPool, app


def _text(output: str) -> str:
    """Rich's help and error panels as plain words: no box drawing, no line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The metrics ports the command serves (none opened; this process's metrics stay in
    memory: the command's multiprocess set-up is models/metrics_expose.py's, tested there)."""
    import visionq.models.metrics_expose as expose

    calls: list[tuple[str, int]] = []
    monkeypatch.setattr("visionq.cli.main.prepare_metrics", lambda role: None)
    monkeypatch.delenv("VISIONQ_METRICS_TOKEN", raising=False)

    def serve(host: str, port: int, token: str | None = None) -> None:
        calls.append((host, port) if token is None else (host, port, token))  # type: ignore[arg-type]

    monkeypatch.setattr(expose, "serve_worker_metrics", serve)
    return calls


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, served: list[tuple[str, int]]) -> list[list[str]]:
    """The argv of every Celery worker the command starts (none actually runs)."""
    from visionq.worker.celery_app import app as celery_app

    calls: list[list[str]] = []
    monkeypatch.setattr(celery_app, "worker_main", calls.append)
    return calls


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_gevent_and_eventlet_are_refused_with_the_reason(
    pool: str, started: list[list[str]]
) -> None:
    result = CliRunner().invoke(app, ["worker", "--pool", pool])
    assert result.exit_code == 2  # a usage error
    assert f"{pool} is not supported: this process is not monkey-patched" in _text(result.output)
    assert started == []


def test_an_unknown_pool_names_the_choices(started: list[list[str]]) -> None:
    result = CliRunner().invoke(app, ["worker", "--pool", "asyncio"])
    assert result.exit_code == 2
    assert "'asyncio' is not one of threads, prefork, solo" in _text(result.output)
    assert started == []


def test_help_lists_the_pools() -> None:
    result = CliRunner().invoke(app, ["worker", "--help"])
    assert result.exit_code == 0
    assert "threads|prefork|solo" in _text(result.output)
    assert [pool.value for pool in WorkerPool] == ["threads", "prefork", "solo"]


@pytest.mark.parametrize(
    ("argv", "pool"),
    [([], "threads"), (["--pool", "prefork"], "prefork"), (["--pool", "solo"], "solo")],
)
def test_a_supported_pool_reaches_celery(
    argv: list[str], pool: str, started: list[list[str]]
) -> None:
    result = CliRunner().invoke(app, ["worker", "--concurrency", "8", *argv])
    assert result.exit_code == 0, result.output
    assert started == [
        [
            "worker",
            "--concurrency=8",
            f"--pool={pool}",
            "--loglevel=INFO",
            "--queues=visionq.jobs,visionq.webhooks",
            "--without-gossip",
            "--without-mingle",
        ]
    ]


def test_the_metrics_port_is_the_setting_or_the_option(
    started: list[list[str]], served: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VISIONQ_WORKER_METRICS_PORT", raising=False)
    assert CliRunner().invoke(app, ["worker"]).exit_code == 0
    monkeypatch.setenv("VISIONQ_WORKER_METRICS_PORT", "9200")
    assert CliRunner().invoke(app, ["worker"]).exit_code == 0
    assert CliRunner().invoke(app, ["worker", "--metrics-port", "0"]).exit_code == 0
    # Loopback unless VISIONQ_WORKER_METRICS_HOST says otherwise (review R12).
    assert served == [("127.0.0.1", 9101), ("127.0.0.1", 9200), ("127.0.0.1", 0)]
    assert len(started) == 3


def test_the_metrics_port_takes_the_host_and_token_settings(
    started: list[list[str]], served: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VISIONQ_WORKER_METRICS_HOST", "0.0.0.0")
    monkeypatch.setenv("VISIONQ_METRICS_TOKEN", "s3cret")
    assert CliRunner().invoke(app, ["worker", "--metrics-port", "9201"]).exit_code == 0
    assert served == [("0.0.0.0", 9201, "s3cret")]  # type: ignore[comparison-overlap]


def test_a_taken_metrics_port_stops_the_worker_with_the_fix(
    started: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import visionq.models.metrics_expose as expose

    def taken(host: str, port: int, token: str | None = None) -> None:
        raise expose.MetricsPortInUse(f"port {port} is in use: give each worker its own")

    monkeypatch.setattr(expose, "serve_worker_metrics", taken)
    result = CliRunner().invoke(app, ["worker", "--metrics-port", "9300"])
    assert result.exit_code == 1
    assert "error: port 9300 is in use: give each worker its own" in _text(result.output)
    assert started == []  # Celery never started


def test_queues_choose_what_the_worker_consumes(started: list[list[str]]) -> None:
    # A worker for webhook deliveries only: its slots are not taken by jobs (review R2).
    result = CliRunner().invoke(app, ["worker", "--queues", "visionq.webhooks"])
    assert result.exit_code == 0, result.output
    assert "--queues=visionq.webhooks" in started[0]
    result = CliRunner().invoke(app, ["worker", "--queues", "visionq.jobs,jobs"])
    assert result.exit_code == 2
    assert "jobs: give visionq.jobs, visionq.webhooks or both" in _text(result.output)
    assert len(started) == 1
