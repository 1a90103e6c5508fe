"""VisionqClient.wait() keeps waiting through an API restart (issue 17): the ids it waits
for are not lost when the API goes away for a deploy and comes back."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.conftest import Stack
from tests.integration.helpers import scene_png, submit
from tests.services import wait_until
from visionq.client.api import VisionqClient
from visionq.client.models import Job

pytestmark = pytest.mark.integration


class CountingTransport(httpx.HTTPTransport):
    """A real transport that counts the requests that found nothing listening."""

    refused = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except httpx.ConnectError:
            self.refused += 1
            raise


def _restart_api(stack: Stack, transport: CountingTransport) -> None:
    """Stop the stack's API and start a new one on the same port, as a deploy would, once
    the waiting client has found nothing listening."""
    stack.builder.stop_process(f"{stack.name}-api")
    wait_until(lambda: transport.refused > 0, timeout=30, what="a refused poll")
    stack.builder.start_api(urlsplit(stack.api_url).port, name=f"{stack.name}-api")


def test_wait_outlasts_an_api_restart(paused_stack: Stack) -> None:
    if paused_stack.worker is not None:  # the job must still be waiting after the restart
        paused_stack.worker.stop()
        paused_stack.worker = None
    with paused_stack.client() as http:
        job_id = submit(http, scene_png(40)[0], task="caption").json()["id"]
    transport = CountingTransport()
    finished: list[dict[str, Job]] = []
    failed: list[BaseException] = []

    def wait() -> None:
        key = paused_stack.keys["acme"]
        with VisionqClient(paused_stack.api_url, key, transport=transport) as client:
            try:
                finished.append(client.wait([job_id], timeout=60))
            except BaseException as exc:  # reported by the test thread
                failed.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    _restart_api(paused_stack, transport)
    with paused_stack.client() as http:
        assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    waiter.join(60)
    assert not failed, failed
    assert finished[0][job_id].status == "cancelled"
