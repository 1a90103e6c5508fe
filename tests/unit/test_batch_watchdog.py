"""The batch watchdog's decisions (worker/batch_watchdog.judge) and where re-sent jobs go
(resend_lane): pure, one case per rule."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from visionq.models.gemini_batches import BatchRow
from visionq.models.settings import Settings
from visionq.worker.batch_watchdog import judge, resend_lane

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SETTINGS = Settings(
    gemini_api_key=None, batch_stall_s=3600, batch_sync_reserve_s=600, batch_max_resends=2,
    tier_safety=1.5,
)  # fmt: skip


def _row(**changes: Any) -> BatchRow:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()), "identity": "i", "model": "m", "state": "running",
        "gemini_name": "batches/abc", "input_mode": "inline", "input_file": None,
        "output_file": None, "job_count": 2, "resends": 0, "stats": {},
        "gemini_state": "BATCH_STATE_RUNNING", "progress_at": NOW - timedelta(minutes=5),
        "claim_expires_at": None, "cancel_requested": False,
        "created_at": NOW - timedelta(hours=1),
    }  # fmt: skip
    return replace(BatchRow(**values), **changes)


FAR = {"a": NOW + timedelta(hours=5), "b": None}


@pytest.mark.parametrize(
    ("row", "unfinished", "kind", "jobs"),
    [
        (_row(), FAR, "ok", ()),
        (_row(state="pending"), FAR, "ok", ()),
        # Unconfirmed creates are matched by name at once; lost only past claim and grace.
        (_row(state="creating", gemini_name=None, claim_expires_at=NOW + timedelta(seconds=1)),
         FAR, "adopt_or_lose", ()),
        (_row(state="creating", gemini_name=None, claim_expires_at=NOW), FAR, "adopt_or_lose",
         ()),
        (_row(state="creating", gemini_name=None), FAR, "adopt_or_lose", ()),
        # Gemini ended it: the poller stores and closes it.
        (_row(state="succeeded", progress_at=NOW - timedelta(days=2)), FAR, "ok", ()),
        (_row(state="expired"), {}, "ok", ()),
        (_row(state="closed"), {}, "ok", ()),
        (_row(cancel_requested=True), FAR, "cancel", ()),
        (_row(), {}, "cancel", ()),  # every job ended (cancelled by users)
        (_row(progress_at=NOW - timedelta(seconds=3600)), FAR, "stalled", ("a", "b")),
        (_row(state="pending", progress_at=NOW - timedelta(hours=30)), FAR, "stalled",
         ("a", "b")),
        (_row(progress_at=NOW - timedelta(seconds=3599)), FAR, "ok", ()),
        # Stalled only with lines still pending: one that answered them all is writing output.
        (_row(progress_at=NOW - timedelta(hours=2),
              stats={"requestCount": 2, "successfulRequestCount": 1, "failedRequestCount": 1}),
         FAR, "ok", ()),
        (_row(progress_at=NOW - timedelta(hours=2), stats={"pendingRequestCount": 1}), FAR,
         "stalled", ("a", "b")),
        # Cancelled for a stall: held for Gemini's CANCELLED (its answered lines are kept),
        # re-sent without them when the cancel is not confirmed within twice the stall time.
        (_row(cancel_requested=True, progress_at=NOW - timedelta(seconds=7199)), FAR,
         "cancel", ()),
        (_row(cancel_requested=True, progress_at=NOW - timedelta(seconds=7200)), FAR,
         "stalled_unconfirmed", ("a", "b")),
        (_row(), {"a": NOW + timedelta(seconds=599), "b": NOW + timedelta(hours=2)},
         "release_near_deadline", ("a",)),
        (_row(), {"a": NOW - timedelta(seconds=5), "b": None}, "release_near_deadline", ("a",)),
        (_row(), {"a": NOW + timedelta(seconds=600)}, "ok", ()),
        # A stall re-sends them all (each by its deadline), so it comes first.
        (_row(progress_at=NOW - timedelta(hours=2)), {"a": NOW + timedelta(seconds=10)},
         "stalled", ("a",)),
    ],
)  # fmt: skip
def test_judge(row: BatchRow, unfinished: dict[str, datetime | None], kind: str,
               jobs: tuple[str, ...]) -> None:  # fmt: skip
    action = judge(row, unfinished, now=NOW, settings=SETTINGS)
    assert (action.kind, action.job_ids) == (kind, jobs)
    assert action.reason


def test_judge_reasons_name_the_setting_and_the_batch() -> None:
    action = judge(_row(progress_at=NOW - timedelta(hours=2)), FAR, now=NOW, settings=SETTINGS)
    assert "VISIONQ_BATCH_STALL_S" in action.reason and "batches/abc" in action.reason


@pytest.mark.parametrize(
    ("left_s", "resends", "lane"),
    [
        (None, 0, "batch"),  # no deadline: another batch
        (None, 2, "standard"),  # re-sent too often
        (3 * 3600, 0, "batch"),  # 3 h left >= 1 h p90 x 1.5
        (3 * 3600, 1, "batch"),
        (3 * 3600, 2, "standard"),
        (5399, 0, "standard"),  # < 1.5 h: a batch may not make it
        (5400, 0, "batch"),
        (-10, 0, "standard"),
    ],
)
def test_resend_lane(left_s: float | None, resends: int, lane: str) -> None:
    deadline = None if left_s is None else NOW + timedelta(seconds=left_s)
    chosen = resend_lane(deadline, NOW, resends=resends, expected_batch_s=3600, settings=SETTINGS)
    assert chosen == lane
