"""Flower shows a failed job as failed under the job's id (issue 17). Flower knows task
states only from Celery's events (the workers keep no result backend): read here as
Flower reads them, with an event receiver on the stack's broker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from celery import Celery

from tests.integration.conftest import Stack
from tests.integration.helpers import scene_png, submit, wait_done
from visionq.models.broker import transport_options

pytestmark = pytest.mark.integration


def _events_app(stack: Stack) -> Celery:
    url = stack.env["VISIONQ_REDIS_URL"]
    app = Celery("visionq-test-events", broker=url, set_as_current=False)
    app.conf.update(transport_options(url))
    return app


@contextmanager
def _task_events(stack: Stack, emulator_url: str) -> Iterator[dict[str, list[str]]]:
    """Celery's task events seen while the block runs, by task id, as Flower sees them;
    the emulator's faults are reset at the end."""
    app = _events_app(stack)
    app.control.enable_events()  # what Flower asks of every worker
    # The worker answers control commands in order: enable_events has been applied too.
    assert app.control.ping(timeout=10, limit=1), "no worker answered"
    states: dict[str, list[str]] = {}
    ready = threading.Event()
    receivers: list[Any] = []

    def on_event(event: dict[str, Any]) -> None:
        states.setdefault(event.get("uuid", ""), []).append(event["type"])

    def listen() -> None:
        with app.connection() as connection:
            receiver = app.events.Receiver(connection, handlers={"*": on_event})
            receivers.append(receiver)
            ready.set()
            receiver.capture(limit=None, timeout=None, wakeup=False)  # until should_stop

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield states
    finally:
        receivers[0].should_stop = True
        thread.join(10)
        httpx.post(f"{emulator_url}/_emulator/reset", timeout=10)
        app.control.disable_events()
        app.close()


def _until(seen: Callable[[], bool], tries: int) -> None:
    """Polls ``seen()`` every 0.1 s, at most ``tries`` times (events arrive after the job)."""
    pause = threading.Event()
    for _ in range(tries):
        if seen():
            return
        pause.wait(0.1)


def test_a_failed_job_is_a_failed_task_under_its_id(stack: Stack, emulator_url: str) -> None:
    with _task_events(stack, emulator_url) as states:
        httpx.post(f"{emulator_url}/_emulator/faults", json={"always_fail": 400}, timeout=10)
        data, _ = scene_png(77)
        with stack.client() as client:
            failing = submit(client, data, task="caption", options={"cache": False}).json()["id"]
            assert wait_done(client, failing)["status"] == "failed"
        httpx.post(f"{emulator_url}/_emulator/reset", timeout=10).raise_for_status()
        with stack.client() as client:
            passing = submit(client, data, task="caption", options={"cache": False}).json()["id"]
            assert wait_done(client, passing)["status"] == "succeeded"
        _until(
            lambda: (
                "task-failed" in states.get(failing, [])
                and "task-succeeded" in states.get(passing, [])
            ),
            100,
        )
    # Under the job's own id; the failed job's task failed, the other's succeeded.
    assert "task-failed" in states.get(failing, []), states
    assert "task-succeeded" not in states.get(failing, [])
    assert "task-succeeded" in states.get(passing, []), states


def test_a_cancelled_job_is_a_revoked_task_under_its_id(stack: Stack, emulator_url: str) -> None:
    """Flower showed a cancelled job SUCCESS: its task now ends with task-revoked."""
    with _task_events(stack, emulator_url) as states:
        # Every call hangs 3 s: the job is cancelled while it runs (or before it starts).
        faults = {"hang_rate": 1.0, "hang_s": 3.0}
        httpx.post(f"{emulator_url}/_emulator/faults", json=faults, timeout=10).raise_for_status()
        data, _ = scene_png(78)
        with stack.client() as client:
            job_id = submit(client, data, task="caption", options={"cache": False}).json()["id"]
            cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
            assert cancelled.json()["status"] == "cancelled", cancelled.text
        _until(lambda: "task-revoked" in states.get(job_id, []), 150)
    assert "task-revoked" in states.get(job_id, []), states
    assert "task-succeeded" not in states.get(job_id, []), states
