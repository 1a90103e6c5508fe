"""/readyz follows a real worker (issue 17, bug 8): not ready without one, ready once its
first heartbeat is in Redis (before Celery says "ready."), not ready again after it stops."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def _workers_check(stack: Stack) -> tuple[int, str]:
    answer = httpx.get(f"{stack.api_url}/readyz", timeout=10)
    return answer.status_code, answer.json()["checks"]["workers"]


def test_readyz_follows_the_worker(paused_stack: Stack) -> None:
    if paused_stack.worker is not None:
        paused_stack.worker.stop()
        paused_stack.worker = None
    assert _workers_check(paused_stack) == (
        503,
        "error: no worker seen in 30 s; start visionq worker",
    )
    paused_stack.start_worker()
    assert _workers_check(paused_stack) == (200, "ok")
    paused_stack.worker.stop()
    paused_stack.worker = None
    status, workers = _workers_check(paused_stack)
    assert status == 503
    assert workers.startswith("error: no worker seen in 30 s; start visionq worker")
