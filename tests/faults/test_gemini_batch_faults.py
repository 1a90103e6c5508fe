"""The Gemini Batch lane under faults (issue 20): a worker killed between creating a batch
and recording it, a create whose answer is lost, a batch that stalls, one that expires, one
with 30% failed lines, the emulator restarted mid-batch, users cancelling jobs in a batch.

Each test sends N = 100 ``tier=batch`` jobs (two Gemini batches of 50) and audits: every
202 ends once, with one result and its usage recorded once, its cost the sum of its
attempts', by its deadline; no 500s, no temporary files, no Gemini batch left live."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.batchaudit import (
    TierAudit,
    check_clean,
    gemini_batches,
    tier_audit,
    wait_batches_settled,
)
from tests.faults.conftest import report
from tests.faults.stack import FaultStack
from tests.services import wait_until

pytestmark = pytest.mark.faults
N = 100
BATCH = {"tier": "batch", "deadline_s": 600}
# Ticks every second; a batch of 50 as soon as 50 jobs wait (two per test) or the oldest
# waited 2 s; a create not known to have landed is matched by display name 2 s after its
# claim lapsed.
LANE = {
    "batch_poll_s": "1",
    "batch_gather_s": "2",
    "batch_min_requests": "50",
    "batch_max_requests": "50",
    "batch_create_grace_s": "2",
    "batch_reconcile_s": "3",
    "batch_sync_reserve_s": "60",
}
FAST = ["--batch-pending-s", "1", "--batch-lines-per-s", "200"]


def _start(
    make_stack: Callable[..., FaultStack],
    *,
    database: str | None = None,
    flags: list[str] | None = None,
    **settings: str,
) -> FaultStack:
    stack = make_stack(database, emulator_flags=flags or FAST, **{**LANE, **settings})
    stack.start_worker(concurrency=8)
    return stack


def _submit(stack: FaultStack, count: int = N) -> list[str]:
    responses = stack.submit_many(count, options=BATCH)
    assert all(r.status_code == 202 for r in responses), {r.status_code for r in responses}
    ids = [r.json()["id"] for r in responses]
    assert all(r.json()["lane"] == "batch" for r in responses), responses[0].json()
    return ids


def _finish(stack: FaultStack, name: str, *, accepted: int = N, **extra: Any) -> TierAudit:
    """Wait for every job and batch to end; run the audit; print the figures."""
    took = stack.wait_all_terminal(accepted, timeout=120)
    wait_batches_settled(stack)
    audit = tier_audit(stack)
    audit.check(accepted)
    check_clean(stack, audit)
    stats = stack.emulator_stats()
    report(name, audit.figures(
        seconds=round(took, 1), batches_created=stats.get("batches_created"),
        lines_answered=stats.get("batch_lines_answered"), **extra))  # fmt: skip
    return audit


def _adoptions(stack: FaultStack) -> int:
    """Gemini batches adopted by display name (a create whose answer never came back)."""
    logs = "".join(p.read_text(errors="replace") for p in stack.workdir.glob("worker-*.log"))
    return logs.count("(its create was not confirmed)")


def _row_in(stack: FaultStack, states: tuple[str, ...]) -> bool:
    return any(row["state"] in states for row in gemini_batches(stack))


def _accepted(rows: list[dict[str, Any]]) -> int:
    """Rows that got a Gemini name: batches Gemini holds (or held) for us."""
    return sum(1 for row in rows if row["gemini_name"])


def test_kill_between_create_and_record(
    make_stack: Callable[..., FaultStack], database: str | None
) -> None:
    """The create lands in Gemini, the worker is SIGKILLed before it records the name: the
    next worker's reconciler finds the batch by its display name and adopts it."""
    stack = _start(make_stack, database=database)
    stack.set_faults(batch_create_delay_s=3)
    _submit(stack)

    def created_not_recorded() -> bool:
        return stack.emulator_stats().get("batches_created", 0) >= 1 and _row_in(
            stack, ("creating",)
        )

    wait_until(created_not_recorded, timeout=30, what="a batch created, its row creating")
    stack.kill_worker(signal.SIGKILL)
    stack.set_faults(batch_create_delay_s=0)
    stack.start_worker(concurrency=8)
    audit = _finish(stack, "batch: worker SIGKILL between create and record", killed=1)
    assert audit.by_status() == {"succeeded": N}
    assert _adoptions(stack) >= 1
    assert {job["served_tier"] for job in audit.jobs} == {"batch"}
    created = stack.emulator_stats()["batches_created"]
    assert created == _accepted(audit.batches), (created, audit.batches)  # no double


def test_lost_create_response(make_stack: Callable[..., FaultStack]) -> None:
    """Gemini creates the batch but the answer is a 503: adopted by display name, never
    created twice."""
    stack = _start(make_stack)
    stack.set_faults(batch_lose_create=1)
    _submit(stack)
    audit = _finish(stack, "batch: create answered 503 after creating")
    assert audit.by_status() == {"succeeded": N}
    assert _adoptions(stack) == 1
    created = stack.emulator_stats()["batches_created"]
    assert created == _accepted(audit.batches) == 2, (created, audit.batches)


def test_stalled_batch(make_stack: Callable[..., FaultStack]) -> None:
    """A batch that stops progressing is cancelled in Gemini and its jobs re-sent in a new
    batch (a batch is expected to take 5 s here: the deadline leaves room for another)."""
    stack = _start(make_stack, batch_stall_s="5", tier_prior_s='{"batch": 5}',
                   tier_min_samples="1000")  # fmt: skip
    stack.set_faults(batch_stall=True, batch_stall_count=1)
    _submit(stack)
    audit = _finish(stack, "batch: one batch stalls")
    assert audit.by_status() == {"succeeded": N}
    assert audit.served() == {"batch": N}
    assert audit.error_classes() == {"BatchStalled": N // 2}, audit.error_classes()
    # The stalled batch's jobs went out again in a batch of the next generation.
    assert sorted(row["resends"] for row in audit.batches) == [0, 0, 1], audit.batches
    assert stack.emulator_stats()["batches_created"] == 3


def test_expired_batch(make_stack: Callable[..., FaultStack], database: str | None) -> None:
    """A batch that expires with no results: its jobs are re-sent and all end in time; with
    no measured batch turnaround (the 24 h prior) a new batch cannot meet their 10-minute
    deadline, so they go to the sync lane at standard."""
    stack = _start(make_stack, database=database, tier_min_samples="1000")
    stack.set_faults(batch_expire_after_s=2, batch_expire_count=1)
    _submit(stack)
    audit = _finish(stack, "batch: one batch expires")
    assert audit.by_status() == {"succeeded": N}
    assert audit.error_classes() == {"BatchExpired": N // 2}, audit.error_classes()
    assert audit.served() == {"batch": N // 2, "standard": N // 2}
    for job in audit.jobs:
        if job["served_tier"] == "standard":
            tries = audit.attempts_of(job["id"])
            assert [a["error_class"] for a in tries] == ["BatchExpired", None], tries
    assert any(row["gemini_state"] == "BATCH_STATE_EXPIRED" for row in audit.batches)


def test_failed_lines_30pct(make_stack: Callable[..., FaultStack]) -> None:
    """30% of the lines answer a 500: those jobs are re-sent, every job succeeds with one
    usage record."""
    stack = _start(make_stack)
    stack.set_faults(batch_fail_line_rate=0.3, batch_fail_line_status=500)
    _submit(stack)
    audit = _finish(stack, "batch: 30% of lines fail with 500")
    assert audit.by_status() == {"succeeded": N}
    line_errors = audit.error_classes().get("BatchLineError", 0)
    assert line_errors >= 10, audit.error_classes()
    assert stack.emulator_stats()["batch_lines_failed"] >= line_errors


def test_emulator_restart_mid_batch(make_stack: Callable[..., FaultStack]) -> None:
    """Gemini forgets a running batch (the emulator restarted): the get answers 404, the
    list confirms, the batch is marked lost and its jobs re-sent."""
    flags = ["--batch-pending-s", "1", "--batch-lines-per-s", "10"]
    stack = _start(make_stack, flags=flags)
    _submit(stack)
    wait_until(lambda: _row_in(stack, ("running",)), timeout=30, what="a batch running")
    stack.restart_emulator()
    audit = _finish(stack, "batch: emulator restarted mid-batch", emulator_restarts=1)
    assert audit.by_status() == {"succeeded": N}
    lost = audit.error_classes()
    assert set(lost) == {"BatchLost"} and lost["BatchLost"] >= N // 2, lost
    assert audit.outcomes()["lost"] == lost["BatchLost"]


def test_user_cancel_in_batch(make_stack: Callable[..., FaultStack]) -> None:
    """Cancelling 30 jobs of a running batch: they end cancelled, their answers are never
    stored; cancelling every job of the other batch cancels it in Gemini."""
    flags = ["--batch-pending-s", "1", "--batch-lines-per-s", "5"]
    stack = _start(make_stack, flags=flags)
    _submit(stack)
    wait_until(
        lambda: sum(row["state"] in ("pending", "running") for row in gemini_batches(stack)) == 2,
        timeout=30,
        what="two batches in Gemini",
    )
    first, second = gemini_batches(stack)[:2]
    members = _members(stack)
    cancel = members[first["id"]][:30] + members[second["id"]]
    with stack.client() as client:
        for job_id in cancel:
            answer = client.post(f"/v1/jobs/{job_id}/cancel")
            assert answer.status_code == 200, answer.text
    audit = _finish(stack, "batch: 80 jobs cancelled in running batches", cancelled=len(cancel))
    assert audit.by_status() == {"cancelled": 80, "succeeded": 20}, audit.by_status()
    for job in audit.jobs:
        if job["status"] == "cancelled":
            assert job["result"] is None and not job["served_tier"], job
            outcomes = {a["outcome"] for a in audit.attempts_of(job["id"])}
            assert outcomes == {"discarded"}, (job, outcomes)
    report("batch: cancelled answers Gemini billed (discarded)",
           {"nusd": audit.discarded_nusd()})  # fmt: skip
    names = {row["id"]: row["gemini_name"] for row in audit.batches}
    states = {b["name"]: b["metadata"]["state"] for b in stack.gemini_batch_list()}
    if names[second["id"]] in states:  # not deleted yet
        assert states[names[second["id"]]] == "BATCH_STATE_CANCELLED"
    assert any(row["gemini_state"] == "BATCH_STATE_CANCELLED" for row in audit.batches)


def _members(stack: FaultStack) -> dict[str, list[str]]:
    """Job ids per Gemini batch row (from the attempts that name it)."""
    members: dict[str, list[str]] = {}
    for attempt in tier_audit(stack).attempts:
        if attempt["gemini_batch_id"]:
            members.setdefault(attempt["gemini_batch_id"], []).append(attempt["job_id"])
    return members
