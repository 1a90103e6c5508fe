"""Decision 16 of issue 23, checked on a real Redis: within the one jobs queue, kombu's Redis
transport hands out a priority-0 message before any priority-9 message, with the worker's
own Celery settings (prefetch 1, acks late). A popped job's PROCESS_JOB (priority 0) thus
overtakes the backlog of RUN_NEXT tokens (priority 9) without a second queue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import redis_server
from visionq.models.broker import JOB_PRIORITY, JOBS_QUEUE, PROCESS_JOB, RUN_NEXT, TOKEN_PRIORITY
from visionq.models.settings import Settings
from visionq.worker.celery_app import celery_config


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as url:
        yield url


def test_priority_zero_is_consumed_before_nine_in_one_queue(redis_url: str) -> None:
    from celery import Celery

    config = celery_config(Settings(redis_url=redis_url))
    assert config["worker_prefetch_multiplier"] == 1
    app = Celery("kombu-priority-check", set_as_current=False)
    app.conf.update(config)
    try:
        for n in range(5):
            app.send_task(RUN_NEXT, queue=JOBS_QUEUE, priority=TOKEN_PRIORITY, task_id=f"token-{n}")
        app.send_task(
            PROCESS_JOB, args=["job-1"], queue=JOBS_QUEUE, task_id="job-1", priority=JOB_PRIORITY
        )
        app.send_task(RUN_NEXT, queue=JOBS_QUEUE, priority=TOKEN_PRIORITY, task_id="token-5")
        # Consumed as a worker does: one message at a time (prefetch 1), acknowledged after.
        got: list[str] = []
        with app.connection_for_read() as conn:  # the worker's transport and its options
            queue = conn.SimpleQueue(JOBS_QUEUE, no_ack=False)
            for _ in range(7):
                message = queue.get(timeout=5)
                got.append(message.headers["id"])
                message.ack()
            queue.close()
        assert got[0] == "job-1"
        assert sorted(got[1:]) == [f"token-{n}" for n in range(6)]
    finally:
        app.close()
