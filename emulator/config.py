"""Settings of one emulator instance, passed to ``create_app`` (never read from globals)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emulator.faults import (
    DEFAULT_HANG_S,
    DEFAULT_QUOTA_WINDOW_S,
    DEFAULT_RETRY_DELAY_S,
    FaultSettings,
    fault_field_names,
)
from emulator.tokens import TokenTable, build_token_table

DEFAULT_INLINE_LIMIT_BYTES = 20 * 1024 * 1024
# The File API's documented limits: 2 GB per file, files deleted after 48 hours.
DEFAULT_FILE_MAX_BYTES = 2 * 1024 * 1024 * 1024
DEFAULT_FILE_TTL_S = 48 * 3600.0
DEFAULT_FILE_PROCESSING_S = 0.5

DEFAULT_MODELS: tuple[str, ...] = (
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.5-pro",
    "gemini-2.0-flash",
    "gemini-2.0-flash-lite",
    "gemini-1.5-flash",
    "gemini-1.5-pro",
    "gemini-3-flash-preview",
    "gemini-3-pro-preview",
    "gemini-3.1-pro-preview",
)


@dataclass(frozen=True)
class EmulatorConfig:
    """What the emulator accepts and how it behaves.

    ``api_keys`` empty means any non-empty key is accepted; a request without a key is
    still rejected, as the real service does.

    File API: an uploaded file is PROCESSING for ``file_processing_s`` seconds (0 = ACTIVE
    or FAILED at once), expires ``file_ttl_s`` seconds after upload and may be at most
    ``file_max_bytes`` long.

    ``invalid_json_every`` = N > 0 makes every Nth structured answer (JSON mime type plus a
    response schema) deliberately violate its schema; 0 never does.

    Token billing (see ``tokens.py``): ``token_rules`` is a parsed rules table in the
    format shared with ``vision/data/token_rules.json``; its ``models`` entries replace or
    add prefixes of the built-in table (None = built-in only). ``flat_image_tokens`` = N
    bills every image N tokens for every model (calibration tests); None = by the rules.
    An invalid table raises ``ValueError`` (``TokenRulesError``) naming the problem.

    Faults and quotas of generateContent (see ``faults.FaultSettings`` for each field):
    ``fail_503_rate``, ``fail_500_rate``, ``fail_429_rate``, ``retry_delay_s``,
    ``daily_quota_exhausted``, ``hang_rate``, ``hang_s``, ``always_fail``, ``fault_seed``,
    ``rpm``, ``tpm``, ``quota_window_s``. They are the start-up values: the app can change
    them at runtime and ``/_emulator/reset`` restores these.
    """

    api_keys: tuple[str, ...] = ()
    latency_ms: float = 0.0
    inline_limit_bytes: int = DEFAULT_INLINE_LIMIT_BYTES
    models: tuple[str, ...] = DEFAULT_MODELS
    file_processing_s: float = DEFAULT_FILE_PROCESSING_S
    file_ttl_s: float = DEFAULT_FILE_TTL_S
    file_max_bytes: int = DEFAULT_FILE_MAX_BYTES
    invalid_json_every: int = 0
    token_rules: Mapping[str, Any] | None = None
    flat_image_tokens: int | None = None
    fail_503_rate: float = 0.0
    fail_500_rate: float = 0.0
    fail_429_rate: float = 0.0
    retry_delay_s: float = DEFAULT_RETRY_DELAY_S
    daily_quota_exhausted: bool = False
    hang_rate: float = 0.0
    hang_s: float = DEFAULT_HANG_S
    always_fail: int | None = None
    fault_seed: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    quota_window_s: float = DEFAULT_QUOTA_WINDOW_S

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if self.inline_limit_bytes <= 0:
            raise ValueError("inline_limit_bytes must be > 0")
        if self.file_processing_s < 0:
            raise ValueError("file_processing_s must be >= 0")
        if self.file_ttl_s <= 0:
            raise ValueError("file_ttl_s must be > 0")
        if self.file_max_bytes <= 0:
            raise ValueError("file_max_bytes must be > 0")
        if self.invalid_json_every < 0:
            raise ValueError("invalid_json_every must be >= 0")
        if not self.models:
            raise ValueError("at least one model must be known")
        if self.flat_image_tokens is not None and (
            isinstance(self.flat_image_tokens, bool) or self.flat_image_tokens <= 0
        ):
            raise ValueError("flat_image_tokens must be > 0")
        self.token_table()  # validates token_rules
        self.fault_settings()  # validates the fault and quota fields

    def fault_settings(self) -> FaultSettings:
        """The start-up fault and quota settings (the same-named fields of this config)."""
        return FaultSettings(**{name: getattr(self, name) for name in fault_field_names()})

    def token_table(self) -> TokenTable:
        """The billing table: built-in rules, ``token_rules`` and ``flat_image_tokens``."""
        return build_token_table(self.token_rules, self.flat_image_tokens)

    def accepts_key(self, key: str) -> bool:
        """True if ``key`` (already known to be non-empty) may call the API."""
        return not self.api_keys or key in self.api_keys

    def knows_model(self, model: str) -> bool:
        """True if ``model`` (without the ``models/`` prefix) is served."""
        return model in self.models
