"""worker.webhook_relay.WebhookRelay on a real (SQLite) database with a fake ``send``: two
relays running at once send each delivery once; a message lost after its claim is reclaimed
and sent again; a batch whose jobs all ended is announced once; a failing tick does not stop
the relay."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from visionq.models import metrics
from visionq.models.broker import DELIVER_WEBHOOK, WEBHOOKS_QUEUE
from visionq.models.migrate import upgrade
from visionq.models.settings import Settings
from visionq.models.table_base import utcnow
from visionq.models.tables import WEBHOOK_DELIVERIES, WEBHOOK_EVENTS, Batch, BatchItem, Job
from visionq.models.webhook_endpoints import create_endpoint
from visionq.models.webhook_outbox import EventType, NewEvent, record_event
from visionq.worker.lifecycle import WebhookRelayThread
from visionq.worker.webhook_relay import WebhookRelay


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, webhook_max_in_flight=100, webhook_timeout_s=5)


def _endpoint(sessions: sessionmaker[Session], tenant: str = "t") -> str:
    with sessions.begin() as session:
        row, _ = create_endpoint(
            session, tenant=tenant, url="https://hooks.example/in",
            events=["job.succeeded", "batch.completed"], description=None, include_result=True,
            max_endpoints=20,
        )  # fmt: skip
    return row.id


def _events(sessions: sessionmaker[Session], n: int, tenant: str = "t") -> list[str]:
    with sessions.begin() as session:
        ids = [
            record_event(session, NewEvent(tenant, EventType.JOB_SUCCEEDED, f"job-{i}"))
            for i in range(n)
        ]
    assert all(ids)
    return [str(i) for i in ids]


def _states(sessions: sessionmaker[Session]) -> dict[int, str]:
    with sessions() as session:
        rows = session.execute(select(WEBHOOK_DELIVERIES.c.id, WEBHOOK_DELIVERIES.c.state))
        return {delivery_id: state for delivery_id, state in rows}


def test_two_relays_send_each_delivery_once(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    _endpoint(sessions)
    _events(sessions, 40)
    sent: list[tuple[int, str]] = []
    lock = threading.Lock()

    def send(delivery_id: int, claim: str) -> None:
        with lock:
            sent.append((delivery_id, claim))

    counted = metrics.WEBHOOK_EVENTS.labels("job.succeeded")._value.get()
    relays = [WebhookRelay(sessions, send, settings) for _ in range(2)]
    reports: list[dict[str, int]] = []
    for _ in range(3):  # several rounds: whichever relay is first, nothing is sent twice
        threads = [
            threading.Thread(target=lambda r=relay: reports.append(r.run_once()))
            for relay in relays
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    states = _states(sessions)
    assert len(states) == 40 and set(states.values()) == {"sending"}
    assert sorted(d for d, _ in sent) == sorted(states)  # each one, once
    assert sum(report["fanned_out"] for report in reports) == 40
    assert metrics.WEBHOOK_EVENTS.labels("job.succeeded")._value.get() == counted + 40
    assert sum(report["dispatched"] for report in reports) == 40
    with sessions() as session:
        rows = session.execute(select(WEBHOOK_DELIVERIES.c.id, WEBHOOK_DELIVERIES.c.claim))
        claims = {delivery_id: claim for delivery_id, claim in rows}
    assert dict(sent) == claims  # the message carries the claim that won


def test_a_message_the_broker_refused_is_sent_at_the_next_tick(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    _endpoint(sessions)
    _events(sessions, 1)
    attempts: list[tuple[int, str]] = []

    def lossy(delivery_id: int, claim: str) -> None:
        attempts.append((delivery_id, claim))
        if len(attempts) == 1:
            raise ConnectionError("the broker is down")

    relay = WebhookRelay(sessions, lossy, settings)
    assert relay.run_once()["dispatched"] == 0  # the claim is given back at once
    assert relay.run_once()["dispatched"] == 1
    assert relay.run_once()["dispatched"] == 0  # claimed: not sent twice meanwhile
    assert [d for d, _ in attempts] == [attempts[0][0]] * 2
    assert attempts[0][1] != attempts[1][1]  # a new claim: a late first message is fenced out


def test_a_finished_batch_is_announced_once(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    _endpoint(sessions, tenant="b")
    now = utcnow()
    with sessions.begin() as session:
        session.add(
            Batch(
                id="batch-1", tenant="b", name="shelf", state="closed", task="caption",
                defaults_hash="0" * 64,
            )
        )  # fmt: skip
        session.add(
            Job(
                id="bj-1", tenant="b", task="caption", model="m", status="succeeded",
                created_at=now, finished_at=now,
            )
        )  # fmt: skip
        session.flush()
        session.add(BatchItem(batch_id="batch-1", key="a.jpg", job_id="bj-1"))
    before = metrics.BATCHES_ENDED.labels("closed")._value.get()
    relay = WebhookRelay(sessions, lambda d, c: None, settings)
    assert relay.run_once()["batches_ended"] == 1
    relay = WebhookRelay(sessions, lambda d, c: None, settings)  # its own scan timer
    assert relay.run_once()["batches_ended"] == 0
    assert metrics.BATCHES_ENDED.labels("closed")._value.get() == before + 1
    with sessions() as session:
        kinds = list(session.scalars(select(WEBHOOK_EVENTS.c.type)))
    assert kinds == ["batch.completed"]


def test_an_event_that_cannot_be_fanned_out_is_counted(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    _endpoint(sessions)
    with sessions.begin() as session:
        # Written by a newer version: a type this one does not know.
        session.execute(
            insert(WEBHOOK_EVENTS).values(
                id="msg_poison", tenant="t", type="job.exploded", subject_id="j",
                occurred_at=utcnow(),
            )
        )  # fmt: skip
    _events(sessions, 1)
    before = metrics.WEBHOOK_EVENTS_UNFANNABLE._value.get()
    done = WebhookRelay(sessions, lambda d, c: None, settings).run_once()
    assert (done["unfannable"], done["fanned_out"]) == (1, 1)
    assert metrics.WEBHOOK_EVENTS_UNFANNABLE._value.get() == before + 1


def test_a_failing_tick_does_not_stop_the_relay(
    sessions: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings.model_copy(update={"webhook_poll_s": 0.01})
    relay = WebhookRelay(sessions, lambda d, c: None, settings)
    stop = threading.Event()
    ticks: list[int] = []

    def tick() -> dict[str, int]:
        ticks.append(1)
        if len(ticks) == 1:
            raise RuntimeError("database restarting")
        stop.set()
        return {}

    monkeypatch.setattr(relay, "run_once", tick)
    runner = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    runner.start()
    runner.join(timeout=10)
    assert not runner.is_alive() and len(ticks) == 2


def test_the_worker_registers_the_task_and_routes_it_to_its_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from visionq.worker import celery_app, webhook_tasks

    assert DELIVER_WEBHOOK in celery_app.app.tasks
    assert celery_app.celery_config(Settings())["task_routes"] == {
        DELIVER_WEBHOOK: {"queue": WEBHOOKS_QUEUE}
    }
    sent: list[tuple[str, object, object]] = []
    monkeypatch.setattr(
        celery_app.app, "send_task",
        lambda name, args, queue: sent.append((name, args, queue)),
    )  # fmt: skip
    webhook_tasks.send_delivery(7, "claim-7")
    assert sent == [(DELIVER_WEBHOOK, [7, "claim-7"], WEBHOOKS_QUEUE)]


def test_the_relay_thread_starts_and_stops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    upgrade(url)
    settings = Settings(data_dir=tmp_path, database_url=url, webhook_poll_s=0.05)
    thread = WebhookRelayThread(settings, lambda d, c: None)
    assert any(t.name == "visionq-webhook-relay" for t in threading.enumerate())
    thread.close()
    assert not any(t.name == "visionq-webhook-relay" for t in threading.enumerate())
