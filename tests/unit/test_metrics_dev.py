"""`visionq dev` says where the stack's metrics are: the API's /metrics and the worker's
own port (a free one per stack, which nobody could guess; review C5)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_stackbuild import started  # noqa: F401 - the fixture
from visionq.cli.dev import console_line, metrics_line
from visionq.cli.stack import Stack
from visionq.cli.stackbuild import StackBuilder


def _stack(builder: StackBuilder, tmp_path: Path) -> Stack:
    return Stack(api_url="http://127.0.0.1:8123", api_key="", redis_url="",
                 uses_emulator=True, run_dir=tmp_path, builder=builder)  # fmt: skip


def test_dev_prints_the_api_and_worker_metrics_urls(
    tmp_path: Path,
    started: list[tuple[str, list[str], dict[str, str]]],  # noqa: F811 - the fixture
) -> None:
    builder = StackBuilder(tmp_path, database_url="sqlite:///x.db")
    builder.start_worker()
    port = started[-1][2]["VISIONQ_WORKER_METRICS_PORT"]
    line = metrics_line(_stack(builder, tmp_path))
    assert line.split() == [
        "metrics", "http://127.0.0.1:8123/metrics", "worker:",
        f"http://127.0.0.1:{port}/metrics",
    ]  # fmt: skip


def test_dev_says_when_the_worker_serves_no_metrics(
    tmp_path: Path,
    started: list[tuple[str, list[str], dict[str, str]]],  # noqa: F811 - the fixture
) -> None:
    builder = StackBuilder(tmp_path, database_url="sqlite:///x.db")
    builder.start_worker(env={"VISIONQ_WORKER_METRICS_PORT": "0"})
    assert "worker: off (VISIONQ_WORKER_METRICS_PORT=0)" in metrics_line(_stack(builder, tmp_path))


def test_dev_prints_the_console_url(tmp_path: Path) -> None:
    stack = _stack(StackBuilder(tmp_path, database_url="sqlite:///x.db"), tmp_path)
    assert console_line(stack, True).split()[:2] == ["console", "http://127.0.0.1:8123/console/"]
    assert "VISIONQ_CONSOLE_ENABLED=false" in console_line(stack, False)
