"""Why a batch's items did not succeed and what to do next: counts by error code (read from
the items list) and the commands that show and re-run them."""

from __future__ import annotations

import shlex
from collections import Counter

from visionq.client import Batch, VisionqClient

# Items read to count error codes: a summary, not an export (a batch of 100,000 failed items
# would take 100 pages); the count says when it stopped short.
MAX_COUNTED = 10_000
PAGE = 1000


def error_codes(client: VisionqClient, batch_id: str, status: str = "failed") -> Counter[str]:
    """How many items of ``status`` ended with each error code (at most MAX_COUNTED items
    read; their total is ``sum(counter.values())``)."""
    codes: Counter[str] = Counter()
    cursor: str | None = None
    while sum(codes.values()) < MAX_COUNTED:
        page = client.batches.items(batch_id, status=status, cursor=cursor, limit=PAGE)
        codes.update(item.error_code or "unknown" for item in page.items)
        cursor = page.next_cursor
        if not cursor or not page.items:
            break
    return codes


def codes_text(codes: Counter[str], total: int) -> str:
    """``timeout 12, gemini_refused 3`` (most first), ``(of the first 10,000)`` if cut."""
    text = ", ".join(f"{code} {count:,}" for code, count in codes.most_common())
    counted = sum(codes.values())
    return text + (f" (of the first {counted:,} of {total:,})" if counted < total else "")


def next_steps(client: VisionqClient, batch: Batch) -> list[str]:
    """For a batch some of whose items failed, were cancelled or expired: the failed ones'
    counts by error code and the commands to see and re-run them (no lines otherwise)."""
    progress = batch.progress
    if progress is None:
        return []
    name = shlex.quote(batch.name)
    lines = []
    failed = progress.counts.failed
    if failed:
        codes = error_codes(client, batch.id)
        lines.append(f"{failed:,} item(s) failed, by error code: {codes_text(codes, failed)}")
        lines.append(f"see them: visionq batch export {name} --status failed")
        code = codes.most_common(1)[0][0] if codes else "CODE"
        lines.append(
            f"re-run them: visionq batch rerun {name} (only one code: --error-code {code})"
        )
    if progress.counts.cancelled:
        lines.append(
            f"{progress.counts.cancelled:,} item(s) cancelled; re-run them: "
            f"visionq batch rerun {name} --include-cancelled"
        )
    if progress.counts.expired:
        lines.append(
            f"{progress.counts.expired:,} item(s) expired (their jobs passed retention): "
            "their results are gone"
        )
    return lines
