"""The audit of issue 20's fault tests (service tiers, the Gemini Batch lane): on top of
``Audit.check_exactly_once``, each job's cost is the sum of its attempts' costs and its
deadline held; the stack is left clean (no 500s, no temporary files, no live Gemini batch,
no batch row left in flight); Gemini answered at least the lines whose answers were stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tests.faults.stack import Audit, FaultStack
from tests.services import wait_until
from visionq.models.blobs import TEMPORARY_SUFFIX
from visionq.models.tables import ATTEMPTS, GEMINI_BATCHES, JOBS

# Rows of gemini_batches still in flight: created or followed, not yet ended by us.
IN_FLIGHT = ("creating", "pending", "running", "succeeded", "failed", "expired", "cancelled")


def gemini_batches(stack: FaultStack) -> list[dict[str, Any]]:
    """The gemini_batches rows, oldest first."""
    assert stack.engine is not None
    query = select(GEMINI_BATCHES).order_by(GEMINI_BATCHES.c.created_at)
    with stack.engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


@dataclass
class TierAudit(Audit):
    """What the database says, with the tier and batch columns."""

    batches: list[dict[str, Any]]

    def attempts_of(self, job_id: str) -> list[dict[str, Any]]:
        return [a for a in self.attempts if a["job_id"] == job_id]

    def check(self, accepted: int) -> None:
        """Every accepted job ended once (one result, usage recorded once), its cost is the
        sum of its attempts' costs (an answer Gemini billed after the job was cancelled
        included: see ``discarded_nusd``), and it finished by its deadline."""
        assert len(self.jobs) == accepted, (len(self.jobs), accepted)
        self.check_exactly_once()
        late = []
        for job in self.jobs:
            costs = sum(a["cost_nusd"] or 0 for a in self.attempts_of(job["id"]))
            assert (job["cost_nusd"] or 0) == costs, (job["id"], job["cost_nusd"], costs)
            deadline: datetime | None = job["deadline_at"]
            if deadline is not None and job["finished_at"] > deadline:
                late.append((job["id"], job["finished_at"], deadline))
        assert late == [], f"{len(late)} jobs ended past their deadline: {late[:3]}"

    def discarded_nusd(self) -> int:
        """What Gemini billed for answers that arrived after their job was cancelled."""
        return sum(a["cost_nusd"] or 0 for a in self.attempts if a["outcome"] == "discarded")

    def error_classes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for attempt in self.attempts:
            if attempt["error_class"]:
                counts[attempt["error_class"]] = counts.get(attempt["error_class"], 0) + 1
        return counts

    def served(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self.jobs:
            tier = job["served_tier"] or "none"
            counts[tier] = counts.get(tier, 0) + 1
        return counts

    def resent(self) -> int:
        """Jobs that went out more than once (a released batch attempt, a flex shed...)."""
        return sum(1 for job in self.jobs if len(self.attempts_of(job["id"])) > 1)

    def figures(self, **extra: Any) -> dict[str, Any]:
        return super().figures(
            served=self.served(),
            error_classes=self.error_classes(),
            gemini_batches=len(self.batches),
            batch_states=sorted({b["state"] for b in self.batches}),
            resent_jobs=self.resent(),
            **extra,
        )


def tier_audit(stack: FaultStack) -> TierAudit:
    """Read jobs, attempts and gemini_batches (typed columns: datetimes compare)."""
    assert stack.engine is not None
    job_columns = [JOBS.c[name] for name in (
        "id", "status", "error_code", "error_message", "result", "total_tokens",
        "attempt_count", "deliveries", "cost_nusd", "standard_cost_nusd", "served_tier",
        "tier", "lane", "deadline_at", "created_at", "finished_at", "gemini_batch_id",
    )]  # fmt: skip
    attempt_columns = [ATTEMPTS.c[name] for name in (
        "job_id", "number", "outcome", "http_status", "error_class", "error_message",
        "retry_delay_s", "usage", "cost_nusd", "requested_tier", "served_tier",
        "gemini_batch_id",
    )]  # fmt: skip
    with stack.engine.connect() as connection:
        jobs = [dict(row) for row in connection.execute(select(*job_columns)).mappings()]
        attempts = [
            dict(row)
            for row in connection.execute(
                select(*attempt_columns).order_by(ATTEMPTS.c.job_id, ATTEMPTS.c.number)
            ).mappings()
        ]
    return TierAudit(jobs, attempts, gemini_batches(stack))


def wait_batches_settled(stack: FaultStack, timeout: float = 60) -> None:
    """Wait until no gemini_batches row is in flight and Gemini holds no live batch (the
    lane closes a batch, and cancels orphans, a tick or two after its jobs ended)."""

    def settled() -> bool:
        rows = gemini_batches(stack)
        return not [r for r in rows if r["state"] in IN_FLIGHT] and not stack.live_gemini_batches()

    try:
        wait_until(settled, timeout=timeout, what="Gemini batches closed")
    except TimeoutError as exc:
        states = [(r["id"][:8], r["state"], r["gemini_state"]) for r in gemini_batches(stack)]
        live = [b.get("name") for b in stack.live_gemini_batches()]
        raise TimeoutError(f"{exc}; rows {states}; live in Gemini {live}") from None


def check_clean(stack: FaultStack, audit: TierAudit) -> None:
    """No 500 and no traceback in the API's log, no temporary file in the blob store, no
    Gemini batch live, and Gemini answered at least the batch lines whose answers we stored."""
    assert stack.builder is not None
    api_log = (stack.workdir / "api.log").read_text(errors="replace")
    assert "Traceback" not in api_log and " 500 " not in api_log
    blobs = stack.workdir / "blobs"
    assert not list(blobs.rglob(f"*{TEMPORARY_SUFFIX}")), list(blobs.rglob("*"))[:5]
    assert stack.live_gemini_batches() == []
    stored = sum(
        1 for job in audit.jobs if job["status"] == "succeeded" and job["served_tier"] == "batch"
    )
    assert stack.emulator_stats().get("batch_lines_answered", 0) >= stored
