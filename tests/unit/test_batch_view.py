"""`visionq batch`'s progress line and its figures."""

from __future__ import annotations

from decimal import Decimal

from visionq.cli.batch_view import UploadCounts, duration, progress_line, usd
from visionq.client.batch_models import BatchProgress


def _progress(**changes: object) -> BatchProgress:
    body = {
        "counts": {"queued": 300, "running": 34, "succeeded": 898, "failed": 1, "cancelled": 1},
        "items": 1234, "done": 900, "tokens": {"total": 5}, "cost_usd": "0.0123",
        "estimate_usd": {"min": "0.01", "max": "0.05"}, "eta_s": 80.4, "eta_basis": "measured",
    } | changes  # fmt: skip
    return BatchProgress.model_validate(body)


def test_the_progress_line_has_uploads_done_failed_cost_and_eta() -> None:
    counts = UploadCounts(total=2003, created=1000, existing=234, rejected=1, skipped=3)
    assert progress_line(counts, _progress()) == (
        "in batch 1,234/2,000 (new 1,000, already there 234, skipped 3, rejected 1) │ "
        "done 900/1,234 failed 1 cancelled 1 │ $0.0123 │ ETA 1m20s"
    )
    fresh = UploadCounts(total=10, created=4)
    assert progress_line(fresh, None) == "in batch 4/10"  # "new" only next to "already there"


def test_cancelled_items_are_not_counted_as_failed() -> None:
    cancelled = _progress(counts={"running": 16, "cancelled": 44}, items=60, done=44)
    assert "done 44/60 failed 0 cancelled 44 │" in progress_line(None, cancelled)
    expired = _progress(counts={"failed": 2, "expired": 3}, items=5, done=5)
    assert progress_line(None, expired).startswith("done 5/5 failed 2 expired 3 │")


def test_no_eta_when_unknown_or_nothing_is_left() -> None:
    assert progress_line(None, _progress(eta_s=None)).endswith("$0.0123")
    ended = _progress(counts={"succeeded": 5}, items=5, done=5, eta_s=0.0)
    assert progress_line(None, ended) == "done 5/5 failed 0 │ $0.0123"
    assert progress_line(UploadCounts(total=4), None) == "in batch 0/4"


def test_durations_and_amounts() -> None:
    assert [duration(s) for s in (0, 44.6, 80, 3599, 3600 * 2 + 5 * 60)] == [
        "0s", "45s", "1m20s", "59m59s", "2h05m",
    ]  # fmt: skip
    assert usd(Decimal("0.000049")) == "$0.0000" and usd(Decimal("0.0123")) == "$0.0123"
    assert usd(Decimal("1234.5")) == "$1,234.50"
