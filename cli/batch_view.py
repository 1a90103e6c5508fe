"""Human output of `visionq batch`: the one-line progress, the summary, the batch tables."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from visionq.client.batch_models import Batch, BatchLaneProgress, BatchProgress

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")
# Where stderr is no terminal (a log file, CI), the progress line is printed this often.
LOG_EVERY_S = 30.0


@dataclass
class UploadCounts:
    """What this run did with its inputs so far (the upload side of the progress line)."""

    total: int
    created: int = 0
    existing: int = 0  # already in the batch (an earlier run, or a lost answer retried)
    rejected: int = 0
    skipped: int = 0
    uploaded_images: int = 0
    referenced_images: int = 0

    @property
    def added(self) -> int:
        """Items of this run's inputs that are in the batch."""
        return self.created + self.existing

    @property
    def handled(self) -> int:
        return self.added + self.rejected + self.skipped


def duration(seconds: float) -> str:
    """``45s``, ``1m20s``, ``2h05m``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02}m"


def usd(amount: Decimal) -> str:
    """``$0.0123`` below a dollar (small batches cost fractions of a cent), ``$12.34`` above."""
    return f"${amount:.4f}" if amount < 1 else f"${amount:,.2f}"


def progress_line(counts: UploadCounts | None, progress: BatchProgress | None) -> str:
    """One line: ``in batch 1,234/2,000 (new 1,000, already there 234, skipped 3, rejected
    1) │ done 900/1,234 failed 1 cancelled 1 │ $0.0123 │ ETA 1m20s``.

    "in batch" counts this run's inputs known to be in the batch: added now ("new") or
    found there by a resumed run ("already there": nothing of theirs was uploaded).
    """
    parts = []
    if counts is not None:
        extra = [f"{label} {value:,}" for label, value in
                 (("new", counts.created if counts.existing else 0),
                  ("already there", counts.existing), ("skipped", counts.skipped),
                  ("rejected", counts.rejected)) if value]  # fmt: skip
        text = f"in batch {counts.added:,}/{counts.total - counts.skipped:,}"
        parts.append(text + (f" ({', '.join(extra)})" if extra else ""))
    if progress is not None:
        ended = progress.counts
        text = f"done {progress.done:,}/{progress.items:,} failed {ended.failed:,}"
        # Cancelled and expired items did not fail: each is named only when there are some.
        others = (("cancelled", ended.cancelled), ("expired", ended.expired))
        text += "".join(f" {label} {value:,}" for label, value in others if value)
        parts.append(text)
        parts.append(usd(progress.cost_usd))
        if progress.eta_s is not None and progress.unfinished:
            parts.append(f"ETA {duration(progress.eta_s)}")
    return " │ ".join(parts)


class StatusLine:
    """The progress line on stderr: redrawn in place on a terminal; elsewhere (a log, a
    pipe) printed every LOG_EVERY_S and once at the end. Messages go above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.text = ""
        self._live = Live(console=console, refresh_per_second=4) if console.is_terminal else None
        self._printed_at = time.monotonic()

    def __enter__(self) -> StatusLine:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, text: str) -> None:
        if text == self.text:
            return
        self.text = text
        if self._live is not None:
            self._live.update(Text(text))
        elif time.monotonic() - self._printed_at >= LOG_EVERY_S:
            self._emit(text)

    def message(self, text: str) -> None:
        """A line printed above the progress line (kept on screen)."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Leave the last progress line on screen (printed once, where no terminal)."""
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()
        elif self.text:
            self._emit(self.text)
            self.text = ""

    def _emit(self, text: str) -> None:
        self._printed_at = time.monotonic()
        self.message(text)


def summary_table(batch: Batch, counts: UploadCounts | None, wall_s: float | None) -> Table:
    """The end of `batch run --wait` and `batch status`: counts, tokens, cost, time."""
    table = Table(box=box.SIMPLE, show_header=False, title=f"batch {batch.name}")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("id", batch.id)
    table.add_row("state", batch.state)
    table.add_row("priority", f"{batch.priority} (0-9, 9 first among your waiting jobs)")
    progress = batch.progress
    if progress is not None:
        counts_text = ", ".join(
            f"{status} {getattr(progress.counts, status):,}"
            for status in STATUSES
            if getattr(progress.counts, status)
        )
        table.add_row("items", f"{progress.items:,} ({counts_text or 'none yet'})")
        tokens = progress.tokens
        table.add_row(
            "tokens",
            f"{tokens.total:,} (prompt {tokens.prompt:,}, answer {tokens.candidates:,}, "
            f"thinking {tokens.thoughts:,})",
        )
        estimate = progress.estimate_usd
        table.add_row(
            "cost", f"{usd(progress.cost_usd)} (estimate {usd(estimate.min)}-{usd(estimate.max)})"
        )
        if progress.eta_s is not None and progress.unfinished:
            table.add_row("ETA", f"{duration(progress.eta_s)} ({progress.eta_basis} rate)")
        if progress.gemini is not None:
            for label, text in gemini_rows(progress.gemini):
                table.add_row(label, text)
    table.add_row(
        "images", f"{batch.images_received:,} uploaded, {batch.images_referenced:,} by sha256"
    )
    if counts is not None:
        table.add_row(
            "this run",
            f"{counts.created:,} added, {counts.existing:,} already there, "
            f"{counts.rejected:,} rejected, {counts.skipped:,} skipped",
        )
    if wall_s is not None:
        table.add_row("wall time", duration(wall_s))
    return table


def gemini_rows(lane: BatchLaneProgress, now: datetime | None = None) -> list[tuple[str, str]]:
    """`batch status` rows for items in the Gemini Batch lane: how many wait to be gathered
    and in Gemini batches, then one row per Gemini batch (its state, Gemini's, lines
    answered, when it last progressed), so waiting can be told from stuck."""
    moment = now or datetime.now(UTC)
    rows = [
        (
            "batch lane",
            f"{lane.in_batches:,} in {len(lane.batches):,} Gemini batch(es), "
            f"{lane.gathering:,} waiting to be gathered",
        )
    ]
    for batch in lane.batches:
        answered = "?" if batch.answered is None else f"{batch.answered:,}"
        at = batch.progress_at
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        since = max((moment - at).total_seconds(), 0.0)
        gemini = f" ({batch.gemini_state})" if batch.gemini_state else ""
        rows.append(
            (
                f"  gemini {batch.id[:8]}",
                f"{batch.state}{gemini}, {answered}/{batch.requests:,} answered, "
                f"{batch.items:,} of ours, progress {duration(since)} ago",
            )
        )
    return rows


def batches_lines(batches: Iterable[Batch]) -> list[str]:
    """`batch list`: a heading and one line per batch, the name last (whole, however long,
    like the 36-character id the other commands take)."""
    lines = [f"{'id':<36}  {'state':<9} {'items':>9}  {'task':<8} {'created':<10}  name"]
    for batch in batches:
        lines.append(
            f"{batch.id:<36}  {batch.state:<9} {batch.item_count:>9,}  {batch.task:<8} "
            f"{batch.created_at:%Y-%m-%d}  {batch.name}"
        )
    return lines


def ended_badly(batch: Batch) -> int:
    """Items that ended without a result (failed, cancelled, expired)."""
    if batch.progress is None:
        return 0
    counts = batch.progress.counts
    return counts.failed + counts.cancelled + counts.expired
