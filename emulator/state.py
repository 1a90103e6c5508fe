"""Everything one emulator app remembers between requests (lives on ``app.state``)."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from visionq.emulator.batches import BatchStore
from visionq.emulator.catalog import Catalogue
from visionq.emulator.config import EmulatorConfig
from visionq.emulator.faults import FAULT_KINDS, FaultSettings, new_rng
from visionq.emulator.files import Clock, FileStore
from visionq.emulator.quota import RPM, TPM, QuotaTracker
from visionq.emulator.spend import SpendWindow
from visionq.emulator.tokens import TokenTable

# The settings that restart the count of each counted batch fault when set.
_BATCH_FAULT_SETTINGS: dict[str, set[str]] = {
    "stall": {"batch_stall", "batch_stall_count"},
    "expire": {"batch_expire_after_s", "batch_expire_count"},
    "fail": {"batch_fail"},
    "lose_create": {"batch_lose_create"},
}


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
      key, model and JSON body checks and so reached the fault stage (whether or not
      they then failed).
    - ``count_tokens_calls``: countTokens calls that passed the same checks.
    - ``file_parts_used``: fileData parts resolved to a stored file in generateContent.
    - ``inline_parts_used``: inline image parts in generateContent.
    - ``structured_answers``: answers built from a response schema (the counter that
      ``invalid_json_every`` works on).
    - ``invalid_structured_answers``: those deliberately made invalid.
    - ``answered_ok``: generate calls answered 200 (admitted by the quotas and answered).
    - ``faults``: injected faults per kind: "503", "500", "429", "daily_quota", "hang"
      (plus the status of ``always_fail`` when it is another one).
    - ``hangs_abandoned``: hung calls whose client disconnected before ``hang_s`` passed.
    - ``quota_rejections``: calls refused by the rpm/tpm windows (429);
      ``quota_rejections_by_limit`` counts them per exceeded limit ("rpm", "tpm").
    - ``web_parts_used``: fileData parts naming a web URL that were fetched.
    - ``spend_rejections``: calls refused by ``spend_limit_usd`` (429).
    - ``outcome_calls``: answered calls seen while a forced outcome was set (the counter
      ``outcome_every`` works on); ``outcomes``: forced outcomes given, per value
      ("SAFETY", "no_parts"...).
    - ``batches_created``: batches made by batchGenerateContent (a lost create included);
      ``batch_lines_answered`` / ``batch_lines_failed``: batch lines answered with a
      response / with an error.
    - ``calls_by_tier``: answered calls per served tier (standard, flex, priority, and
      batch for batch lines); ``billed_usd_by_tier``: their cost in USD from the
      catalogue's prices and tier factors.
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
    answered_ok: int = 0
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))
    hangs_abandoned: int = 0
    quota_rejections: int = 0
    quota_rejections_by_limit: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((RPM, TPM), 0)
    )
    web_parts_used: int = 0
    spend_rejections: int = 0
    outcome_calls: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    batches_created: int = 0
    batch_lines_answered: int = 0
    batch_lines_failed: int = 0
    calls_by_tier: dict[str, int] = field(default_factory=dict)
    billed_usd_by_tier: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The counters as a JSON object."""
        return asdict(self)


@dataclass
class EmulatorState:
    """Per-app state: the config, the token rule table, the File API store, counters,
    the current fault settings with their random generator, and the quota windows.

    ``clock`` (wall time) is injectable so lifecycle rules (processing delay, expiry) can
    be tested without sleeping; ``monotonic`` times the quota windows, which must not
    jump with the wall clock.
    """

    config: EmulatorConfig
    clock: Clock = time.time
    monotonic: Clock = time.monotonic
    counters: Counters = field(default_factory=Counters)
    files: FileStore = field(init=False)
    catalogue: Catalogue = field(init=False)
    token_table: TokenTable = field(init=False)
    faults: FaultSettings = field(init=False)
    fault_rng: random.Random = field(init=False)
    tier_rng: random.Random = field(init=False)
    quota: QuotaTracker = field(init=False)
    spend: SpendWindow = field(init=False)
    # Objects served at /_emulator/public/{name}: name -> (MIME type, bytes).
    public: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    batches: BatchStore = field(default_factory=BatchStore)
    batch_rng: random.Random = field(init=False)
    # How many batches each counted batch fault has hit since it was set.
    batch_fault_uses: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.files = FileStore(self.clock)
        self.catalogue = self.config.catalogue()
        self.token_table = self.catalogue.token_table(self.config.flat_image_tokens)
        self._start_faults()

    def _start_faults(self) -> None:
        self.faults = self.config.fault_settings()
        self.fault_rng = new_rng(self.faults.fault_seed)
        # A generator of its own, so flex shedding never shifts the seeded fault draws.
        self.tier_rng = new_rng(self.faults.fault_seed)
        self.batch_rng = new_rng(self.faults.fault_seed)
        self.batch_fault_uses = {}
        self.quota = QuotaTracker()
        self.spend = SpendWindow()

    def reset(self) -> None:
        """Back to start-up (``POST /_emulator/reset``).

        Forgets all files, upload sessions, batches (stopping them), counters and quota
        windows, and restores the
        fault settings given at start-up (runtime changes are undone; the draws restart
        from ``fault_seed``).
        """
        self.files.clear()
        self.public.clear()
        self.batches.clear()
        self.counters = Counters()
        self._start_faults()

    def set_faults(self, changes: Mapping[str, Any]) -> FaultSettings:
        """Apply runtime fault/quota changes (``POST /_emulator/faults``); ValueError if bad.

        A new ``fault_seed`` restarts the draws from it. Quota windows and counters stay:
        admissions made under the old limits still count against the new ones.
        """
        self.faults = self.faults.updated(changes)
        if "fault_seed" in changes:
            self.fault_rng = new_rng(self.faults.fault_seed)
            self.tier_rng = new_rng(self.faults.fault_seed)
            self.batch_rng = new_rng(self.faults.fault_seed)
        # Setting a counted batch fault again counts its N next batches from now.
        for kind, names in _BATCH_FAULT_SETTINGS.items():
            if names & set(changes):
                self.batch_fault_uses.pop(kind, None)
        return self.faults

    def take_batch_fault(self, kind: str) -> bool:
        """Whether a new batch suffers ``kind`` (stall, expire, fail, lose_create); counted.

        stall and expire hit their next ``*_count`` batches (0 = all); fail and lose_create
        hit their next N batches.
        """
        settings = self.faults
        if kind == "stall":
            on, limit = settings.batch_stall, settings.batch_stall_count
        elif kind == "expire":
            on, limit = settings.batch_expire_after_s is not None, settings.batch_expire_count
        elif kind == "fail":
            on, limit = settings.batch_fail > 0, settings.batch_fail
        else:
            on, limit = settings.batch_lose_create > 0, settings.batch_lose_create
        used = self.batch_fault_uses.get(kind, 0)
        if not on or (limit > 0 and used >= limit):
            return False
        self.batch_fault_uses[kind] = used + 1
        return True

    def take_outcome_turn(self) -> tuple[str, str] | None:
        """The forced outcome of this answered call (setting, value), or None.

        With an outcome set, answered calls N, 2N, 3N... (``outcome_every`` = N, counted
        since start or the last reset) get it.
        """
        outcome = self.faults.outcome()
        if outcome is None:
            return None
        self.counters.outcome_calls += 1
        if self.counters.outcome_calls % self.faults.outcome_every:
            return None
        value = outcome[1]
        self.counters.outcomes[value] = self.counters.outcomes.get(value, 0) + 1
        return outcome

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
