"""One asyncio task per batch: PENDING, then its lines answered one by one, then the end.

Every line goes through the same answer core as generateContent
(``service.answer_call`` with tier ``batch``), after the same front-end checks, so a bad
line is answered with the error generateContent would give (a per-line error) while the
other lines are answered normally. Faults (faults.py): a stalled batch stays PENDING and
shows no progress; a batch hit by ``batch_expire_after_s`` stays PENDING and turns
EXPIRED; ``batch_fail`` ends it FAILED; ``batch_fail_line_rate`` fails single lines.
"""

from __future__ import annotations

import asyncio
import logging

from visionq.emulator import errors, frontend
from visionq.emulator.batch_output import write_output
from visionq.emulator.batches import EXPIRED, FAILED, RUNNING, SUCCEEDED, Batch, LineResult
from visionq.emulator.errors import EmulatorError
from visionq.emulator.service import BATCH_TIER, Call, answer_call
from visionq.emulator.state import EmulatorState

LOG = logging.getLogger(__name__)
FAILED_BATCH_ERROR = {"code": 500, "message": "Batch failed: internal error.", "status": "INTERNAL"}


def start(state: EmulatorState, batch: Batch) -> None:
    """Run ``batch`` in the background (the caller is inside the app's event loop)."""
    batch.task = asyncio.get_running_loop().create_task(run(state, batch))


async def _wait_until(state: EmulatorState, moment: float) -> None:
    # Wall-clock deadline, real sleep: tests shorten the times instead of faking them.
    await asyncio.sleep(max(0.0, moment - state.clock()))


def _expire(state: EmulatorState, batch: Batch) -> None:
    if batch.live:
        batch.end(EXPIRED, state.clock())


async def run(state: EmulatorState, batch: Batch) -> None:
    """Move ``batch`` from PENDING to its end; cancelled by batches.cancel or a reset."""
    try:
        if batch.stall or batch.forced_expiry:
            # No progress at all: same state, same updateTime, same stats, until expiry.
            await _wait_until(state, batch.expire_at)
            _expire(state, batch)
            return
        await asyncio.sleep(state.faults.batch_pending_s)
        if batch.fail:
            batch.end(FAILED, state.clock(), error=dict(FAILED_BATCH_ERROR))
            return
        batch.state = RUNNING
        batch.updated = state.clock()
        await _answer_lines(state, batch)
        if batch.live:
            batch.end(SUCCEEDED, state.clock())
            write_output(batch, state.files, state.config.file_ttl_s)
    except asyncio.CancelledError:
        raise
    except Exception:  # pragma: no cover - a bug must not leave a batch RUNNING forever
        LOG.exception("batch %s failed inside the emulator", batch.name)
        batch.end(FAILED, state.clock(), error=dict(FAILED_BATCH_ERROR))


async def _answer_lines(state: EmulatorState, batch: Batch) -> None:
    for index, _ in enumerate(batch.lines):
        if state.clock() >= batch.expire_at:
            _expire(state, batch)
            return
        result = await answer_line(state, batch, index)
        if not batch.live:  # cancelled while the line was answered
            return
        batch.record(index, result, state.clock())
        if result.response is not None:
            state.counters.batch_lines_answered += 1
        else:
            state.counters.batch_lines_failed += 1
        rate = state.faults.batch_lines_per_s
        if rate > 0:
            await asyncio.sleep(1 / rate)


def _line_failure(status: int) -> EmulatorError:
    if status == 429:
        return EmulatorError(429, "Resource has been exhausted (e.g. check quota).")
    return errors.failure(status)


async def answer_line(state: EmulatorState, batch: Batch, index: int) -> LineResult:
    """The response or error of line ``index`` of ``batch``."""
    line = batch.lines[index]
    try:
        if line.error is not None:
            raise line.error
        settings = state.faults
        if settings.batch_fail_line_rate > 0 and (
            state.batch_rng.random() < settings.batch_fail_line_rate
        ):
            raise _line_failure(settings.batch_fail_line_status)
        assert line.request is not None
        frontend.check_body(line.request, batch.api_version, "generateContent")
        spec = state.catalogue.resolve(
            batch.answering_model, batch.api_version, "generateContent", True
        )
        call = Call(
            requested=batch.model.removeprefix("models/"),
            spec=spec,
            api_version=batch.api_version,
            base_url=batch.base_url,
        )
        result = await answer_call(state, call, line.request, BATCH_TIER)
    except EmulatorError as exc:
        return LineResult(error=exc.body()["error"])
    return LineResult(response=result.body)
