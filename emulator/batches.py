"""The Batch API's batches: what one batch holds, its states, and the store of all of them.

No HTTP and no answering here (batches_api.py speaks the protocol, batch_run.py moves a
batch through its states, batch_output.py writes what it shows). Times are wall-clock
seconds from the state's clock.

States, as Google names them: PENDING -> RUNNING -> SUCCEEDED; or FAILED, CANCELLED
(by ``batches.cancel``) or EXPIRED (not done ``batch_ttl_s`` after creation, or forced by
the ``batch_expire_after_s`` fault). The last four are terminal (``done: true``).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from visionq.emulator import errors
from visionq.emulator.errors import EmulatorError
from visionq.emulator.files import ID_ALPHABET
from visionq.emulator.paging import page_of

PENDING = "BATCH_STATE_PENDING"
RUNNING = "BATCH_STATE_RUNNING"
SUCCEEDED = "BATCH_STATE_SUCCEEDED"
FAILED = "BATCH_STATE_FAILED"
CANCELLED = "BATCH_STATE_CANCELLED"
EXPIRED = "BATCH_STATE_EXPIRED"
LIVE_STATES = frozenset({PENDING, RUNNING})
BATCH_ID_LENGTH = 16
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def new_batch_id() -> str:
    """A random id of [a-z0-9]: the SDK and the output file name (``batch-<id>``) need it."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(BATCH_ID_LENGTH))


@dataclass
class BatchLine:
    """One request of a batch: inline (``metadata``) or a JSONL line (``key``).

    ``error`` is set when the line could not be read (bad JSON, schema violation): it is
    then answered with that error, like any other failed line.
    """

    request: dict[str, Any] | None
    key: str | None = None
    metadata: Any = None
    has_metadata: bool = False
    error: EmulatorError | None = None


@dataclass
class LineResult:
    """The answer of one line: a GenerateContentResponse body or a google.rpc.Status."""

    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass
class Batch:
    """One batch job and everything its Operation shows."""

    batch_id: str
    model: str  # "models/<id as asked>"
    answering_model: str
    api_version: str
    base_url: str
    display_name: str
    file_name: str | None  # "files/<id>" for JSONL input, None for inline requests
    lines: list[BatchLine]
    created: float
    seq: int
    expire_at: float
    state: str = PENDING
    updated: float = 0.0
    ended: float | None = None
    results: dict[int, LineResult] = field(default_factory=dict)
    output_file: str | None = None  # "files/batch-<id>" once written
    error: dict[str, Any] | None = None
    stall: bool = False
    forced_expiry: bool = False
    fail: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """``batches/<id>``."""
        return f"batches/{self.batch_id}"

    @property
    def live(self) -> bool:
        """PENDING or RUNNING."""
        return self.state in LIVE_STATES

    def succeeded_count(self) -> int:
        """Lines answered with a response."""
        return sum(1 for r in self.results.values() if r.response is not None)

    def failed_count(self) -> int:
        """Lines answered with an error."""
        return sum(1 for r in self.results.values() if r.error is not None)

    def record(self, index: int, result: LineResult, now: float) -> None:
        """One line answered: its result, and a new updateTime."""
        self.results[index] = result
        self.updated = now

    def end(self, state: str, now: float, error: dict[str, Any] | None = None) -> None:
        """Move to a terminal state at ``now``."""
        self.state = state
        self.updated = now
        self.ended = now
        self.error = error


class BatchStore:
    """Every batch of one emulator app (in memory: a restart forgets them, decision D5)."""

    def __init__(self) -> None:
        self.batches: dict[str, Batch] = {}
        self._seq = 0

    def next_seq(self) -> int:
        """The creation order number of a new batch."""
        self._seq += 1
        return self._seq

    def add(self, batch: Batch) -> None:
        """Remember a new batch."""
        self.batches[batch.batch_id] = batch

    def get(self, batch_id: str) -> Batch:
        """The batch ``batches/<batch_id>``, or the API's 404."""
        found = self.batches.get(batch_id.removeprefix("batches/"))
        if found is None:
            raise errors.EmulatorError(404, f"Batch batches/{batch_id} not found.")
        return found

    def delete(self, batch_id: str) -> None:
        """batches.delete: 404 if unknown, 400 FAILED_PRECONDITION while it runs."""
        batch = self.get(batch_id)
        if batch.live:
            raise EmulatorError(
                400,
                f"Batch {batch.name} is still {batch.state}; cancel it or wait until it ends"
                " before deleting it.",
                status="FAILED_PRECONDITION",
            )
        del self.batches[batch.batch_id]

    def clear(self) -> None:
        """Forget every batch, stopping the ones still running."""
        for batch in self.batches.values():
            if batch.task is not None:
                batch.task.cancel()
        self.batches.clear()

    def live_count(self) -> int:
        """Batches PENDING or RUNNING."""
        return sum(1 for b in self.batches.values() if b.live)

    def page(self, page_size: int | None, page_token: str | None) -> tuple[list[Batch], str]:
        """One page of batches.list (newest first) and the next token ("" on the last).

        A token holds the creation number of the last batch returned, so deletions
        between pages neither repeat nor skip batches.
        """
        return page_of(
            sorted(self.batches.values(), key=lambda b: b.seq, reverse=True),
            lambda item: item.seq,
            page_size=page_size,
            page_token=page_token,
            sizes=(DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
            kind="batch",
        )
