"""The one stack builder's options, without starting processes: environment, Redis and
Gemini choices, emulator flags, API arguments, worker pool and per-worker settings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from visionq.cli.stackbuild import StackBuilder


class FakeProcess:
    def __init__(self, name: str, stopped: list[str]) -> None:
        self.name = name
        self.stopped = stopped

    def stop(self) -> None:
        self.stopped.append(self.name)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str], dict[str, str]]]:
    """Record what StackBuilder.start would start, starting nothing."""
    calls: list[tuple[str, list[str], dict[str, str]]] = []

    def start(
        builder: StackBuilder,
        name: str,
        args: list[str],
        ready: Any,
        *,
        env: Mapping[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> Any:
        calls.append((name, args, dict(env or builder.env)))
        proc = FakeProcess(name, [])
        builder.processes.append(proc)  # type: ignore[arg-type]
        return proc

    monkeypatch.setattr(StackBuilder, "start", start)
    return calls


def test_the_environment_drops_the_gemini_keys_unless_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "real")
    monkeypatch.setenv("GOOGLE_API_KEY", "real")
    builder = StackBuilder(tmp_path, database_url="sqlite:///x.db", extra_env={"VISIONQ_A": "1"})
    assert "GEMINI_API_KEY" not in builder.env and "GOOGLE_API_KEY" not in builder.env
    assert builder.env["VISIONQ_DATABASE_URL"] == "sqlite:///x.db"
    assert builder.env["VISIONQ_A"] == "1"
    kept = StackBuilder(tmp_path, keep_gemini_keys=True)
    assert kept.env["GEMINI_API_KEY"] == "real" and "VISIONQ_DATABASE_URL" not in kept.env
    kept.use_gemini("http://127.0.0.1:9", "k")
    assert "GOOGLE_API_KEY" not in kept.env
    assert (kept.env["GEMINI_API_KEY"], kept.env["VISIONQ_GEMINI_BASE_URL"]) == (
        "k",
        "http://127.0.0.1:9",
    )


def test_options_reach_the_commands(
    tmp_path: Path, started: list[tuple[str, list[str], dict[str, str]]]
) -> None:
    builder = StackBuilder(tmp_path, database_url="sqlite:///x.db")
    builder.use_redis("redis://127.0.0.1:6390/3")
    url = builder.start_own_emulator(["--latency-ms", "5"])
    builder.start_api(8123, args=["--workers", "2"])
    builder.start_worker(name="w1", concurrency=3, pool="solo", env={"VISIONQ_LEASE_S": "4"})
    builder.start_worker(name="w2")
    (_, emulator, _), (_, api, _), (_, w1, w1_env), (_, w2, w2_env) = started
    assert emulator[-4:-2] == ["--api-key", builder.env["GEMINI_API_KEY"]]
    assert emulator[-2:] == ["--latency-ms", "5"]
    assert builder.env["VISIONQ_GEMINI_BASE_URL"] == url
    assert api[-6:] == ["--host", "127.0.0.1", "--port", "8123", "--workers", "2"]
    assert builder.api_url == "http://127.0.0.1:8123"
    assert w1[-4:] == ["--concurrency", "3", "--pool", "solo"]
    assert w1_env["VISIONQ_LEASE_S"] == "4" and "VISIONQ_LEASE_S" not in w2_env
    # Each worker its own metrics port on loopback, so workers and stacks never collide.
    ports = {w1_env["VISIONQ_WORKER_METRICS_PORT"], w2_env["VISIONQ_WORKER_METRICS_PORT"]}
    assert len(ports) == 2 and "9101" not in ports
    assert w1_env["VISIONQ_WORKER_METRICS_HOST"] == "127.0.0.1"
    w1_port = w1_env["VISIONQ_WORKER_METRICS_PORT"]
    assert builder.metrics_url("w1") == f"http://127.0.0.1:{w1_port}/metrics"
    builder.start_worker(name="w3", env={"VISIONQ_WORKER_METRICS_PORT": "0"})
    assert started[-1][2]["VISIONQ_WORKER_METRICS_PORT"] == "0"
    assert "w3" not in builder.metrics_urls
    assert w2[-2:] == ["--concurrency", "16"]
    assert w1_env["VISIONQ_REDIS_URL"] == "redis://127.0.0.1:6390/3"


def test_stop_stops_newest_first_and_stop_process_one(tmp_path: Path) -> None:
    stopped: list[str] = []
    builder = StackBuilder(tmp_path)
    for name in ("redis", "emulator", "api", "worker"):
        builder.processes.append(FakeProcess(name, stopped))  # type: ignore[arg-type]
    builder.stop_process("api")
    assert builder.process("worker").name == "worker"
    with pytest.raises(KeyError):
        builder.process("api")
    builder.stop()
    assert stopped == ["api", "worker", "emulator", "redis"]
    assert builder.processes == []
