"""Follow submitted Gemini batches until their results are stored.

Each poll reads every ``pending``/``running`` batch of this Gemini project raw (state,
updateTime, batchStats: worker/batch_api.py) and records it (``observe``: the watchdog's
progress clock). A batch Gemini ended is then collected:

- ``succeeded``: its results are read (inline responses, or the output file downloaded to
  a temporary file) and stored (worker/batch_results.py); jobs with no line are re-sent;
- ``failed``, ``expired``, ``cancelled``: whatever results exist are stored (a cancelled
  batch may have some: one the watchdog cancelled for a stall keeps the lines it answered),
  lines of jobs that left the batch meanwhile recorded on their attempts (paid for), the
  rest of its jobs re-sent (a new batch while the deadline
  and VISIONQ_BATCH_MAX_RESENDS allow, else the sync lane);

then the row is ``closed``, the JSONL input deleted and (VISIONQ_BATCH_DELETE_DONE) the
batch deleted at Gemini, in that order: results are committed before Google's copy goes. A
collection stopped midway (a storage fault, a crash) leaves the row in Gemini's terminal
state, the resume point: the next poll reads the output again, and jobs already stored are
no longer under the batch's token, so they are skipped.

A batch Gemini answers 404 for, and does not list either, is ``lost``: its jobs are
re-sent the same way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from visionq.models.gemini_batches import (
    BatchRow,
    GeminiBatchState,
    close_stray_attempts,
    get_row,
    live_batches,
    observe,
    set_state,
)
from visionq.models.settings import Settings
from visionq.models.tables import utcnow
from visionq.worker.batch_api import GeminiBatches
from visionq.worker.batch_gather import expected_batch_s
from visionq.worker.batch_release import ENDED, FOLLOWED, NOT_FOUND, STALL_MARK, release_held
from visionq.worker.batch_requests import scratch_file
from visionq.worker.batch_results import LineOutcome, read_inline, read_jsonl, store_outcomes
from visionq.worker.context import WorkerContext
from visionq.worker.errors import GeminiCallError

log = logging.getLogger(__name__)

# Why jobs leave a batch that ended without their line, per state (attempts' error_class).
_RELEASE_CLASS = {
    GeminiBatchState.SUCCEEDED: "BatchLineMissing",
    GeminiBatchState.FAILED: "BatchFailed",
    GeminiBatchState.EXPIRED: "BatchExpired",
    GeminiBatchState.CANCELLED: "BatchCancelled",
    GeminiBatchState.LOST: "BatchLost",
}


@dataclass
class FollowReport:
    """What one poll did (summed over batches)."""

    polled: int = 0
    collected: int = 0
    lost: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    errors: int = 0

    def add(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + value

    def as_dict(self) -> dict[str, int]:
        return {"polled": self.polled, "collected": self.collected, "lost": self.lost,
                "poll_errors": self.errors, **self.counts}  # fmt: skip


class Follower:
    """Polls this project's live batches and collects those that ended."""

    def __init__(
        self,
        ctx: WorkerContext,
        batches: GeminiBatches,
        *,
        settings: Settings,
        identity: str,
        folder: Path,
        renew: Callable[[], None] = lambda: None,
    ) -> None:
        self._ctx = ctx
        self._batches = batches
        self._settings = settings
        self._identity = identity
        self._folder = folder
        self._renew = renew

    def run_once(self) -> FollowReport:
        """Poll every followed batch, then collect every one that ended (one failing batch,
        whatever it raises, does not stop the others: its error is logged, it is tried again
        next tick)."""
        report = FollowReport()
        with self._ctx.sessions() as session:
            rows = live_batches(session, self._identity)
        for row in rows:
            self._renew()
            try:
                current = self._poll(row, report) if row.state in FOLLOWED else row
                if current is not None and current.state in ENDED:
                    self.collect(current, report)
            except GeminiCallError as exc:
                report.errors += 1
                log.warning("Gemini batch %s (%s): %s; tried again next poll",
                            row.id, row.gemini_name, exc.message)  # fmt: skip
            except Exception:
                # A bug of ours, or a fault while storing: logged with its traceback, and
                # the batches after this one are still polled and collected (their jobs
                # must not wait on it); this one is tried again next poll, and the
                # watchdog's deadline rule sends its jobs to standard in time.
                report.errors += 1
                log.exception("Gemini batch %s (%s) could not be followed; tried again next "
                              "poll", row.id, row.gemini_name)  # fmt: skip
        return report

    def _poll(self, row: BatchRow, report: FollowReport) -> BatchRow | None:
        assert row.gemini_name is not None  # pending/running rows were accepted with it
        report.polled += 1
        try:
            remote = self._batches.get(row.gemini_name)
        except GeminiCallError as exc:
            if exc.http_status != NOT_FOUND or self._listed(row.gemini_name):
                raise
            self._lose(row, report)
            return None
        with self._ctx.sessions.begin() as session:
            return observe(
                session, row.id, gemini_state=remote.state, update_time=remote.update_time,
                stats=remote.stats, output_file=remote.responses_file,
            )  # fmt: skip

    def _listed(self, name: str) -> bool:
        """Whether Gemini still lists the batch (a 404 on get is confirmed by the list)."""
        return any(remote.name == name for remote in self._batches.list_all())

    def _lose(self, row: BatchRow, report: FollowReport) -> None:
        with self._ctx.sessions.begin() as session:
            gone = "Gemini no longer has this batch (404, not listed)"
            if not set_state(
                session, row.id, GeminiBatchState.LOST, from_states=FOLLOWED, error=gone
            ):
                return
        log.warning("Gemini batch %s (%s) is gone at Gemini; its jobs are re-sent",
                    row.id, row.gemini_name)  # fmt: skip
        report.lost += 1
        self._release_rest(row, GeminiBatchState.LOST, report)
        self._close(row, GeminiBatchState.LOST)

    def collect(self, row: BatchRow, report: FollowReport) -> None:
        """Store an ended batch's results, release the rest of its jobs, close it."""
        state = GeminiBatchState(row.state)
        with self._ctx.sessions() as session:
            expected = expected_batch_s(session, row.model, self._settings)
        # Read even when every job left the batch (cancelled, released near its deadline):
        # a line Gemini answered for them was billed, and is recorded on their attempts.
        with self._lines(row) as lines:
            counts = store_outcomes(self._ctx, row, lines, self._settings,
                                    expected_batch_s=expected, renew=self._renew)  # fmt: skip
        report.add(counts)
        if counts.get("deferred"):
            log.warning("Gemini batch %s: %d results not stored yet (storage fault); "
                        "stored again next poll", row.id, counts["deferred"])  # fmt: skip
            return
        self._release_rest(row, state, report)
        if self._close(row, state):
            report.collected += 1
            self._clean_up(row)

    @contextlib.contextmanager
    def _lines(self, row: BatchRow) -> Iterator[Iterable[LineOutcome]]:
        """The batch's output lines (none when it has none: expired, failed early, or its
        output is gone at Gemini, a 404: its jobs are then re-sent, never held forever)."""
        assert row.gemini_name is not None
        path = scratch_file(self._folder, "batch-output")
        lines: Iterable[LineOutcome] = ()
        try:
            try:
                if row.input_mode == "inline":
                    lines = read_inline(self._batches.inlined(row.gemini_name))
                elif row.output_file:
                    self._renew()
                    self._batches.download(row.output_file, path)
                    lines = read_jsonl(path)
            except GeminiCallError as exc:
                if exc.http_status != NOT_FOUND:
                    raise
                log.warning("Gemini batch %s (%s): its output is gone (%s); its jobs are "
                            "re-sent", row.id, row.gemini_name, exc.message)  # fmt: skip
            yield lines
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _release_rest(self, row: BatchRow, state: GeminiBatchState, report: FollowReport) -> None:
        """Re-send the jobs the batch still holds: a new batch when there is time, else the
        sync lane (per job, by its deadline: worker/batch_release.py)."""
        with self._ctx.sessions.begin() as session:
            lanes = release_held(
                session, row, now=utcnow(), reason=_release_reason(row, state),
                error_class=_release_class(row, state), settings=self._settings,
            )  # fmt: skip
        report.add({"released": sum(lanes.values())})

    def _close(self, row: BatchRow, state: GeminiBatchState) -> bool:
        """Close the row; attempts still open belong to jobs that ended (cancelled) while in
        the batch with no line for them: closed ``discarded``."""
        with self._ctx.sessions.begin() as session:
            close_stray_attempts(session, row.id, reason="the job ended while in the Gemini batch")
            return set_state(session, row.id, GeminiBatchState.CLOSED, from_states=[state])

    def _clean_up(self, row: BatchRow) -> None:
        """After the results are committed: delete the JSONL input and the batch."""
        with self._ctx.sessions() as session:
            current = get_row(session, row.id)
        targets: list[tuple[str, Callable[[str], None]]] = []
        if current is not None and current.input_file:
            targets.append((current.input_file, self._batches.delete_file))
        if self._settings.batch_delete_done and row.gemini_name:
            targets.append((row.gemini_name, self._batches.delete))
        for name, remove in targets:
            try:
                remove(name)
            except GeminiCallError as exc:
                log.info("%s not deleted (%s); the reconciler deletes ended batches of ours",
                         name, exc.message)  # fmt: skip


def _release_class(row: BatchRow, state: GeminiBatchState) -> str:
    """Why the rest of an ended batch's jobs leave it (their attempts' error_class): a
    batch the watchdog cancelled for a stall is ``BatchStalled``."""
    if state == GeminiBatchState.CANCELLED and (row.error or "").startswith(STALL_MARK):
        return "BatchStalled"
    return _RELEASE_CLASS.get(state, "BatchEnded")


def _release_reason(row: BatchRow, state: GeminiBatchState) -> str:
    name = row.gemini_name or row.id
    if state == GeminiBatchState.SUCCEEDED:
        return f"Gemini batch {name} ended without an answer for this job; sent again"
    if state == GeminiBatchState.LOST:
        return f"Gemini batch {name} is gone at Gemini (404); sent again"
    detail = f": {row.error}" if row.error else ""
    return f"Gemini batch {name} ended {state.value}{detail}; sent again"
