"""Everything one emulator app remembers between requests (lives on ``app.state``)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from emulator.config import EmulatorConfig
from emulator.files import Clock, FileStore
from emulator.tokens import TokenTable


@dataclass
class Counters:
    """Emulator-only observability, served by ``GET /_emulator/stats``.

    - ``uploads_started``: resumable sessions opened (``start`` accepted).
    - ``uploads_completed``: sessions finalized into a file (FAILED files included).
    - ``uploads_failed_processing``: completed uploads whose file ended FAILED.
    - ``upload_chunks``: chunk requests that stored data (the SDK sends 8 MiB each).
    - ``upload_bytes``: bytes accepted in upload chunks.
    - ``files_deleted``: successful files.delete calls.
    - ``generate_calls``: generateContent/streamGenerateContent calls that passed the
      key and model checks (whether or not they then failed).
    - ``count_tokens_calls``: the same for countTokens.
    - ``file_parts_used``: fileData parts resolved to a stored file in generateContent.
    - ``inline_parts_used``: inline image parts in generateContent.
    - ``structured_answers``: answers built from a response schema (the counter that
      ``invalid_json_every`` works on).
    - ``invalid_structured_answers``: those deliberately made invalid.
    """

    uploads_started: int = 0
    uploads_completed: int = 0
    uploads_failed_processing: int = 0
    upload_chunks: int = 0
    upload_bytes: int = 0
    files_deleted: int = 0
    generate_calls: int = 0
    count_tokens_calls: int = 0
    file_parts_used: int = 0
    inline_parts_used: int = 0
    structured_answers: int = 0
    invalid_structured_answers: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a JSON object."""
        return asdict(self)


@dataclass
class EmulatorState:
    """Per-app state: the config, the token rule table, the File API store and counters.

    ``clock`` is injectable so lifecycle rules (processing delay, expiry) can be tested
    without sleeping.
    """

    config: EmulatorConfig
    clock: Clock = time.time
    counters: Counters = field(default_factory=Counters)
    files: FileStore = field(init=False)
    token_table: TokenTable = field(init=False)

    def __post_init__(self) -> None:
        self.files = FileStore(self.clock)
        self.token_table = self.config.token_table()

    def reset(self) -> None:
        """Forget all files, upload sessions and counters (``POST /_emulator/reset``)."""
        self.files.clear()
        self.counters = Counters()

    def take_invalid_turn(self) -> bool:
        """Count one structured answer; True if this one must violate its schema.

        With ``invalid_json_every`` = N > 0, answers N, 2N, 3N... (counted since start
        or the last reset, across all models and keys) are invalid.
        """
        self.counters.structured_answers += 1
        every = self.config.invalid_json_every
        invalid = every > 0 and self.counters.structured_answers % every == 0
        if invalid:
            self.counters.invalid_structured_answers += 1
        return invalid
