"""Workers, Redis and the database die mid-run: every accepted job still ends exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.faults.conftest import report
from tests.faults.stack import FaultStack
from tests.services import PostgresServer, postgres_bindir

pytestmark = pytest.mark.faults
N = 100


def _finish_and_check(
    stack: FaultStack, accepted: int, name: str, *, supervise: bool = False, **extra: object
) -> None:
    took = stack.wait_all_terminal(accepted, supervise=supervise)
    audit = stack.audit()
    audit.check_exactly_once()
    assert audit.by_status() == {"succeeded": accepted}, audit.by_status()
    ok_calls = stack.emulator_stats()["answered_ok"]
    report(name, audit.figures(gemini_ok_calls=ok_calls, worker_restarts=stack.restarts,
                               duplicate_calls=ok_calls - accepted,
                               seconds_to_finish_after_fault=round(took, 1), **extra))  # fmt: skip


def test_a_worker_killed_mid_call_loses_nothing(make_stack: Callable[..., FaultStack]) -> None:
    stack = make_stack(emulator_flags=["--latency-ms", "400"])
    first = stack.start_worker(concurrency=16)
    responses = stack.submit_many(N)
    assert all(r.status_code == 202 for r in responses)
    stack.wait_for(lambda c: c.get("succeeded", 0) >= 20 and c.get("running", 0) >= 5, 60,
                   "jobs running")  # fmt: skip
    in_flight = stack.counts().get("running", 0)
    first.kill()  # SIGKILL: no cleanup, its running jobs keep their (lapsing) leases
    stack.start_worker(concurrency=16)
    _finish_and_check(stack, N, "worker SIGKILL", running_when_killed=in_flight)
    lost = stack.audit().outcomes().get("lost", 0)
    assert lost >= 1  # the killed calls are on record as lost attempts


def test_redis_killed_and_restarted_with_aof(make_stack: Callable[..., FaultStack]) -> None:
    stack = make_stack(emulator_flags=["--latency-ms", "300"])
    stack.start_worker(concurrency=16)
    responses = stack.submit_many(N)
    assert all(r.status_code == 202 for r in responses)
    stack.wait_for(lambda c: c.get("succeeded", 0) >= 15, 60, "some jobs done")
    assert stack.redis is not None
    stack.redis.kill()
    time.sleep(3)
    stack.redis.start()
    # Supervised like compose would, so that a crash shows as a failed check below rather
    # than as jobs waiting for a worker: Celery 5.7 used to exit on the reconnect while
    # restoring unacknowledged messages (models/broker.py keeps it alive).
    _finish_and_check(stack, N, "redis SIGKILL + restart (AOF)", supervise=True)
    assert stack.restarts == 0, "the worker exited on the Redis restart (see its log)"


def test_redis_down_while_jobs_are_submitted(make_stack: Callable[..., FaultStack]) -> None:
    stack = make_stack()
    stack.start_worker(concurrency=16)
    assert stack.redis is not None
    stack.redis.kill()
    responses = stack.submit_many(N)
    codes = sorted({r.status_code for r in responses})
    accepted = sum(r.status_code == 202 for r in responses)
    # Never a 202 that is lost: each is a job row; a refusal leaves none.
    assert set(codes) <= {202, 503}, [r.text for r in responses if r.status_code not in (202, 503)]
    assert sum(stack.counts().values()) == accepted
    stack.redis.start()
    _finish_and_check(stack, accepted, "redis down at submit", answered_202=accepted)
    assert accepted == N  # intake keeps working without Redis: the sweeper sends them


@pytest.mark.skipif(postgres_bindir() is None, reason="PostgreSQL server binaries not installed")
def test_database_restarted_mid_run(make_stack: Callable[..., FaultStack]) -> None:
    server = PostgresServer()
    try:
        server.create()
        stack = make_stack(server.url, emulator_flags=["--latency-ms", "300"])
        stack.start_worker(concurrency=16)
        responses = stack.submit_many(N)
        assert all(r.status_code == 202 for r in responses)
        stack.wait_for(lambda c: c.get("succeeded", 0) >= 15, 60, "some jobs done")
        server.kill()
        time.sleep(3)
        server.start()
        _finish_and_check(stack, N, "postgres SIGKILL + restart")
    finally:
        server.remove()


def test_a_job_that_kills_its_worker_every_time_ends_failed(
    make_stack: Callable[..., FaultStack],
) -> None:
    stack = make_stack(emulator_flags=["--latency-ms", "3000"], lease_s="2", max_deliveries="3")
    stack.start_worker(concurrency=4)
    (response,) = stack.submit_many(1)
    job_id = response.json()["id"]
    kills = 0
    while True:
        # Wait for the next delivery to be claimed (or for the job to be given up).
        stack.wait_for(_claimed_or_failed(stack, kills + 1), 60, f"delivery {kills + 1}")
        if stack.counts().get("failed"):
            break
        stack.workers[-1].kill()
        kills += 1
        assert kills <= 3, "the job was delivered more often than VISIONQ_MAX_DELIVERIES"
        stack.start_worker(concurrency=4)
    (job,) = stack.audit().jobs
    assert (job["id"], job["status"], job["error_code"]) == (job_id, "failed", "worker_lost")
    assert kills == 3 and job["deliveries"] == 4
    assert stack.audit().outcomes() == {"lost": 3}


def _delivered(stack: FaultStack) -> int:
    (job,) = stack.audit().jobs
    return int(job["deliveries"])


def _claimed_or_failed(stack: FaultStack, delivery: int) -> Callable[[dict[str, int]], bool]:
    return lambda counts: "failed" in counts or _delivered(stack) >= delivery
