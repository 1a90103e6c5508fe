"""docker-compose and /readyz (issue 17): the api's healthcheck is /readyz, which needs a
worker's heartbeat, so nothing may wait for the api to be healthy before it starts, or a
worker waiting on it would never start and the api never become healthy."""

from __future__ import annotations

from tests.deploy.deployfiles import depends_on, healthcheck_argv, services


def test_the_api_is_healthy_when_ready_and_nothing_waits_for_that() -> None:
    assert "/readyz" in " ".join(healthcheck_argv("api"))
    waiting = [name for name in services() if depends_on(name).get("api") == "service_healthy"]
    assert waiting == []


def test_the_worker_does_not_wait_for_the_api() -> None:
    assert "api" not in depends_on("worker")
