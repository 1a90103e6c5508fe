"""`visionq batch run`'s upload loop: chunks (cli/batch_chunk.py) sent by a pool of
``--parallel`` threads, the progress line, Ctrl-C.

The main thread keeps at most ``--parallel`` chunks in flight (so memory stays flat whatever
the number of files), shows the progress and handles Ctrl-C: the first one stops scheduling
and lets the chunks in flight finish, a second one quits at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import FrameType
from typing import IO, NoReturn

from rich.console import Console

from visionq.cli.batch_chunk import MAX_CHUNK_BYTES, ChunkResult, Stopped, chunks, send_chunk
from visionq.cli.batch_files import RejectedLog
from visionq.cli.batch_inputs import Source
from visionq.cli.batch_limit import CallLimit
from visionq.cli.batch_view import StatusLine, UploadCounts, progress_line
from visionq.cli.inputs import InputError
from visionq.client import VisionqClient, VisionqError
from visionq.client.batch_models import Batch, BatchProgress

# How often the main thread asks GET /v1/batches/{id} for the done/cost/ETA part.
POLL_S = 2.0
# Skipped files (and rejected items) shown on stderr; all go to --skipped (--rejected) FILE.
SKIPPED_SHOWN = 20


@dataclass
class RunOutcome:
    """How the upload ended: counts, and the error that stopped it, if one did."""

    counts: UploadCounts
    interrupted: bool = False
    error: str | None = None
    batch: Batch | None = None


class Uploader:
    """Sends every item of a run, showing progress on ``console`` (stderr)."""

    def __init__(
        self,
        client: VisionqClient,
        batch: Batch,
        *,
        total: int,
        parallel: int,
        chunk: int,
        console: Console,
        skipped_file: IO[str] | None = None,
        rejected_log: RejectedLog | None = None,
    ) -> None:
        self.client = client
        self.batch = batch
        self.resumed = batch.item_count > 0
        self.parallel = parallel
        self.chunk = chunk
        self.limit = CallLimit(chunk)
        self._limit_told = False
        self.console = console
        self.skipped_file = skipped_file
        self.rejected_log = rejected_log
        self.counts = UploadCounts(total=total)
        self.stop = threading.Event()
        self._interrupts = 0
        self._last_poll = 0.0

    def run(self, sources: Iterable[Source]) -> RunOutcome:
        """Upload everything (or until Ctrl-C / an error stops it); the first Ctrl-C stops
        scheduling and lets the chunks in flight finish, a second one quits at once."""
        outcome = RunOutcome(self.counts)
        previous = signal.getsignal(signal.SIGINT)
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            signal.signal(signal.SIGINT, self._on_sigint)
        try:
            with (
                ThreadPoolExecutor(self.parallel, thread_name_prefix="upload") as pool,
                StatusLine(self.console) as line,
            ):
                try:
                    self._loop(pool, line, chunks(sources, self.limit, MAX_CHUNK_BYTES), outcome)
                    line.update(progress_line(self.counts, self._progress(force=True)))
                except KeyboardInterrupt:
                    self._quit_now(pool, line)
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)
        outcome.interrupted = self.stop.is_set() and outcome.error is None
        outcome.batch = self.batch
        return outcome

    def _loop(
        self,
        pool: ThreadPoolExecutor,
        line: StatusLine,
        work: Iterator[list[Source]],
        outcome: RunOutcome,
    ) -> None:
        pending: set[Future[ChunkResult]] = set()
        exhausted = False
        while True:
            while not self.stop.is_set() and not exhausted and len(pending) < self.parallel:
                try:
                    sources = next(work)
                except StopIteration:
                    exhausted = True
                    break
                except InputError as exc:
                    self._fail(outcome, str(exc))
                    break
                pending.add(pool.submit(self._send, sources))
            if not pending:
                return
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            for future in done:
                self._collect(future, outcome, line)
            line.update(progress_line(self.counts, self._progress()))

    def _send(self, sources: list[Source]) -> ChunkResult:
        return send_chunk(
            self.client, self.batch.id, sources, resumed=self.resumed, stop=self.stop,
            limit=self.limit,
        )  # fmt: skip

    def _collect(self, future: Future[ChunkResult], outcome: RunOutcome, line: StatusLine) -> None:
        try:
            result = future.result()
        except Stopped:
            return
        except VisionqError as exc:
            self._fail(outcome, str(exc))
            return
        if self.limit.lowered and not self._limit_told:
            self._limit_told = True
            line.message(
                f"the API took fewer than --chunk {self.chunk} items per call: sending "
                f"{self.limit.size:,} at a time"
            )
        counts = self.counts
        counts.created += result.created
        counts.existing += result.existing
        counts.rejected += len(result.rejected)
        counts.uploaded_images += result.uploaded_images
        counts.referenced_images += result.referenced_images
        for rejection in result.rejected:
            if self.rejected_log is None or self.rejected_log.count < SKIPPED_SHOWN:
                line.message(f"rejected: {rejection.text()}")
            if self.rejected_log is not None:
                self.rejected_log.add(rejection)
        for text in result.skipped:
            if counts.skipped < SKIPPED_SHOWN:
                line.message(f"skipped: {text}")
            counts.skipped += 1
            if self.skipped_file is not None:
                self.skipped_file.write(text + "\n")

    def _fail(self, outcome: RunOutcome, message: str) -> None:
        if outcome.error is None:
            outcome.error = message
        self.stop.set()

    def _progress(self, *, force: bool = False) -> BatchProgress | None:
        """The batch's progress, asked at most every POLL_S (None until first known)."""
        now = time.monotonic()
        if force or now - self._last_poll >= POLL_S:
            self._last_poll = now
            # A slow or restarting API: keep the last progress, ask again later.
            with contextlib.suppress(VisionqError):
                self.batch = self.client.batches.get(self.batch.id)
        return self.batch.progress

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self._interrupts += 1
        if self._interrupts > 1:
            raise KeyboardInterrupt
        self.stop.set()

    def _quit_now(self, pool: ThreadPoolExecutor, line: StatusLine) -> NoReturn:
        """The second Ctrl-C: exit 130 without waiting for the requests in flight (the
        server may still commit one: a resumed run finds its items as "exists")."""
        pool.shutdown(wait=False, cancel_futures=True)
        line.close()
        self.console.print(self.interrupted_text(), markup=False, highlight=False, soft_wrap=True)
        self.console.file.flush()
        sys.stdout.flush()
        os._exit(130)  # not sys.exit: the pool's threads would be waited for at exit

    def held_text(self) -> str:
        """What the batch holds, as last read (at least what this run found in it), and
        this run's share: ``batch b holds 300 item(s) (this run: 10 added, 290 found
        already there, of its 302 input(s))``."""
        counts = self.counts
        held = max(self.batch.item_count, counts.added)
        return (
            f"batch {self.batch.name} holds {held:,} item(s) (this run: {counts.created:,} "
            f"added, {counts.existing:,} found already there, of its {counts.total:,} input(s))"
        )

    def interrupted_text(self) -> str:
        return f"interrupted: {self.held_text()}; they keep running; run the same command to resume"
