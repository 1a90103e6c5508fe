"""`visionq webhooks ...` and `--webhook-url` as a user types them, against the in-process
app (the CLI's client talks to it through the TestClient's transport; the commands, the
client and the routes are the real ones): create, list, show --secret, update
--disable/--enable, rotate --grace, attempts, deliveries, replay (and its usage errors),
callbacks --secret, delete; `visionq submit --webhook-url` stores the job's callback URL and
refuses a private one."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import update

from tests.integration.conftest import redis_db
from tests.integration.helpers import scene_png
from tests.integration.inprocess import InProcessApi, in_process_api, in_process_cli
from visionq.models.db import make_session_factory
from visionq.models.tables import utcnow
from visionq.models.webhook_fanout import fan_out
from visionq.models.webhook_tables import WEBHOOK_DELIVERIES

pytestmark = pytest.mark.integration

HOOK = "http://127.0.0.2:9/hook"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[InProcessApi]:
    tenant = f"wh-cli-{uuid.uuid4().hex[:8]}"
    with in_process_api(
        Path(tmp_path_factory.mktemp("webhooks-cli")), redis_db(redis_url), (tenant,),
        url_fetch_allowed_networks=["127.0.0.2/32"],
    ) as app:  # fmt: skip
        yield app


@pytest.fixture
def cli(api: InProcessApi, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run `visionq ARGS` in process, its client wired to the in-process app."""
    return in_process_cli(api, monkeypatch)


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_webhooks_commands(cli: Any) -> None:
    created = _json(cli("webhooks", "create", HOOK, "--event", "job.succeeded", "-e",
                        "job.failed", "--description", "orders", "--no-result",
                        "--json"))  # fmt: skip
    endpoint_id = created["id"]
    assert created["secret"].startswith("whsec_") and created["include_result"] is False
    assert created["events"] == ["job.succeeded", "job.failed"]

    listed = cli("webhooks", "list")
    assert listed.exit_code == 0 and endpoint_id in listed.stdout and HOOK in listed.stdout
    shown = cli("webhooks", "show", endpoint_id, "--secret")
    assert f"secret: {created['secret']}" in shown.stdout and "orders" in shown.stdout

    disabled = _json(cli("webhooks", "update", endpoint_id, "--disable", "--json"))
    assert disabled["enabled"] is False
    refused = cli("webhooks", "replay", endpoint_id, "--since", "1h")
    assert refused.exit_code == 1 and "webhook_disabled" in refused.output
    enabled = _json(cli("webhooks", "update", endpoint_id, "--enable", "-e", "job.cancelled",
                        "--json"))  # fmt: skip
    assert enabled["enabled"] is True and enabled["events"] == ["job.cancelled"]
    nothing = cli("webhooks", "update", endpoint_id)
    assert nothing.exit_code == 1 and "nothing to change" in nothing.output

    rotated = cli("webhooks", "rotate", endpoint_id, "--grace", "1h")
    assert rotated.exit_code == 0, rotated.output
    new_secret = rotated.stdout.splitlines()[0].removeprefix("secret: ")
    assert new_secret.startswith("whsec_") and new_secret != created["secret"]
    assert "previous secret signs too until" in rotated.stdout
    assert _json(cli("webhooks", "show", endpoint_id, "--secret", "--json"))["secret"] == (
        new_secret
    )

    assert _json(cli("webhooks", "attempts", endpoint_id, "--failed", "--since", "2h",
                     "--json")) == []  # fmt: skip
    assert _json(cli("webhooks", "deliveries", endpoint_id, "--state", "failed", "--json")) == []
    replayed = cli("webhooks", "replay", endpoint_id, "--since", "2026-12-01T00:00Z")
    assert replayed.exit_code == 0 and "replayed 0 deliveries" in replayed.stdout
    both = cli("webhooks", "replay", endpoint_id, "--event", "msg_x", "--since", "1h")
    assert both.exit_code == 1 and "exactly one of" in both.output
    unknown = cli("webhooks", "replay", endpoint_id, "--event", "msg_nothing")
    assert unknown.exit_code == 1 and "webhook_event_not_found" in unknown.output

    callbacks = _json(cli("webhooks", "callbacks", "--secret", "--json"))
    assert callbacks["kind"] == "callbacks" and callbacks["secret"].startswith("whsec_")

    deleted = cli("webhooks", "delete", endpoint_id)
    assert deleted.exit_code == 0, deleted.output
    gone = cli("webhooks", "show", endpoint_id)
    assert gone.exit_code == 1 and "webhook_not_found" in gone.output


def test_refusals_name_what_to_do(cli: Any) -> None:
    private = cli("webhooks", "create", "http://10.0.0.1/x", "--event", "job.failed")
    assert private.exit_code == 1 and "url_host_not_allowed" in private.output
    no_event = cli("webhooks", "create", HOOK)
    assert no_event.exit_code == 2 and "--event" in no_event.output
    bad_event = cli("webhooks", "create", HOOK, "--event", "job.done")
    assert bad_event.exit_code == 2 and "job.succeeded" in bad_event.output
    bad_grace = cli("webhooks", "rotate", str(uuid.uuid4()), "--grace", "soon")
    assert bad_grace.exit_code == 2 and "24h" in bad_grace.output


def test_submit_with_webhook_url(api: InProcessApi, cli: Any, tmp_path: Path) -> None:
    image = tmp_path / "scene.png"
    image.write_bytes(scene_png(2201)[0])
    args = ("submit", str(image), "--task", "caption", "--webhook-url", HOOK, "--json")
    (submitted,) = _json(cli(*args))
    (tenant,) = api.keys
    with api.client(tenant) as client:
        job = client.get(f"/v1/jobs/{submitted['id']}").raise_for_status().json()
    assert job["webhook_url"] == HOOK
    # The same command again finds the same job (the URL is part of its Idempotency-Key).
    (again,) = _json(cli(*args))
    assert again["id"] == submitted["id"]
    refused = cli("submit", str(image), "--task", "caption", "--webhook-url", "http://10.9.9.9/")
    assert refused.exit_code == 1 and "url_host_not_allowed" in refused.output
    # A refused URL is refused again on every run: no "run it again to resume".
    assert "fails the same way" in refused.output and "to resume" not in refused.output


def test_batch_run_with_webhook_url(api: InProcessApi, cli: Any, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(scene_png(2202)[0])
    name = f"hooked-{uuid.uuid4().hex[:6]}"
    ran = cli("batch", "run", str(folder), "--task", "caption", "--name", name,
              "--webhook-url", HOOK)  # fmt: skip
    assert ran.exit_code == 0, ran.output
    (tenant,) = api.keys
    with api.client(tenant) as client:
        (batch,) = client.get("/v1/batches", params={"name": name}).json()["batches"]
    assert batch["webhook_url"] == HOOK
    # Every input added: closed, so that batch.completed is sent once its items end (an open
    # batch may still get items, and --wait would wait for an event that never comes).
    assert batch["state"] == "closed" and "batch.completed goes to --webhook-url" in ran.output
    # The same command again finds it complete (exit 0), as it would an open one.
    again = cli("batch", "run", str(folder), "--task", "caption", "--name", name,
                "--webhook-url", HOOK)  # fmt: skip
    assert again.exit_code == 0 and "nothing to add" in again.output, again.output
    # Resumed with another URL: the batch's defaults differ, and the message says so.
    other = cli("batch", "run", str(folder), "--task", "caption", "--name", name,
                "--webhook-url", HOOK + "2")  # fmt: skip
    assert other.exit_code == 1 and "--webhook-url" in other.output


def test_replay_of_one_event_says_one_delivery(api: InProcessApi, cli: Any, tmp_path: Path) -> None:
    image = tmp_path / "scene.png"
    image.write_bytes(scene_png(2203)[0])
    (job,) = _json(cli("submit", str(image), "--task", "caption", "--no-cache", "--webhook-url",
                       HOOK, "--json"))  # fmt: skip
    (tenant,) = api.keys
    with api.client(tenant) as client:
        client.post(f"/v1/jobs/{job['id']}/cancel").raise_for_status()
    with make_session_factory(api.engine).begin() as session:  # the worker's fan-out
        fan_out(session, now=utcnow())
    callbacks = _json(cli("webhooks", "callbacks", "--json"))["id"]
    (delivery,) = _json(cli("webhooks", "deliveries", callbacks, "--json"))
    with make_session_factory(api.engine).begin() as session:  # its 24 h ended in failure
        session.execute(
            update(WEBHOOK_DELIVERIES)
            .where(WEBHOOK_DELIVERIES.c.event_id == delivery["event_id"])
            .values(state="failed")
        )
    replayed = cli("webhooks", "replay", callbacks, "--event", delivery["event_id"])
    assert replayed.exit_code == 0, replayed.output
    assert replayed.stdout.strip() == "replayed 1 delivery"
