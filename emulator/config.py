"""Settings of one emulator instance, passed to ``create_app`` (never read from globals)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from visionq.emulator.catalog import Catalogue
from visionq.emulator.catalog_load import build_catalogue
from visionq.emulator.faults import (
    FaultSettings,
    fault_field_names,
)
from visionq.emulator.tokens import TokenTable

# Google raised the inline request limit of generateContent to 100 MB in January 2026.
DEFAULT_INLINE_LIMIT_BYTES = 100 * 1024 * 1024
# The File API's documented limits: 2 GB per file, files deleted after 48 hours.
DEFAULT_FILE_MAX_BYTES = 2 * 1024 * 1024 * 1024
DEFAULT_FILE_TTL_S = 48 * 3600.0
DEFAULT_FILE_PROCESSING_S = 0.5
# Batch API: inline batch requests under 20 MB; a batch not done in 48 h expires.
DEFAULT_BATCH_INLINE_LIMIT_BYTES = 20 * 1024 * 1024
DEFAULT_BATCH_TTL_S = 48 * 3600.0


@dataclass(frozen=True)
class EmulatorConfig(FaultSettings):
    """What the emulator accepts and how it behaves.

    ``api_keys`` empty means any non-empty key is accepted; a request without a key is
    still rejected, as the real service does.

    File API: an uploaded file is PROCESSING for ``file_processing_s`` seconds (0 = ACTIVE
    or FAILED at once), expires ``file_ttl_s`` seconds after upload and may be at most
    ``file_max_bytes`` long.

    ``invalid_json_every`` = N > 0 makes every Nth structured answer (JSON mime type plus a
    response schema) deliberately violate its schema; 0 never does.

    Models (see ``catalog.py``): ``model_catalogue`` is the parsed JSON of an override of
    the built-in catalogue ``emulator/data/models.json`` (None = built-in only): which ids
    exist, their status, thinking rules, mask format and billing. ``existing_project``
    makes the emulator play a project that used closed models before (they answer instead
    of the "no longer available to new users" 404). ``flat_image_tokens`` = N bills every
    image N tokens for every model (calibration tests); None = by each model's billing.
    An invalid catalogue raises ``ValueError`` (``CatalogueError``) naming the problem.

    ``fetch_allowed_hosts``: ``host`` or ``host:port`` names whose http(s) URLs a
    ``fileData`` part may name; the emulator fetches them (it cannot reach the internet,
    so every other web URL answers the API's unreachable-URL 400).

    Batch API: a ``batchGenerateContent`` body with inline requests may be at most
    ``batch_inline_limit_bytes`` long; a batch not done ``batch_ttl_s`` after creation
    expires.

    Faults and quotas of generateContent: the fields of ``faults.FaultSettings``, inherited
    (declared once, there). They are the start-up values: the app can change them at
    runtime (``fault_settings()`` is where that starts) and ``/_emulator/reset`` restores
    these.
    """

    api_keys: tuple[str, ...] = ()
    latency_ms: float = 0.0
    inline_limit_bytes: int = DEFAULT_INLINE_LIMIT_BYTES
    file_processing_s: float = DEFAULT_FILE_PROCESSING_S
    file_ttl_s: float = DEFAULT_FILE_TTL_S
    file_max_bytes: int = DEFAULT_FILE_MAX_BYTES
    invalid_json_every: int = 0
    model_catalogue: Mapping[str, Any] | None = None
    existing_project: bool = False
    fetch_allowed_hosts: tuple[str, ...] = ()
    flat_image_tokens: int | None = None
    batch_inline_limit_bytes: int = DEFAULT_BATCH_INLINE_LIMIT_BYTES
    batch_ttl_s: float = DEFAULT_BATCH_TTL_S

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
        if self.batch_inline_limit_bytes <= 0:
            raise ValueError("batch_inline_limit_bytes must be > 0")
        if self.batch_ttl_s <= 0:
            raise ValueError("batch_ttl_s must be > 0")
        if self.invalid_json_every < 0:
            raise ValueError("invalid_json_every must be >= 0")
        if self.flat_image_tokens is not None and (
            isinstance(self.flat_image_tokens, bool) or self.flat_image_tokens <= 0
        ):
            raise ValueError("flat_image_tokens must be > 0")
        self.token_table()  # validates model_catalogue and flat_image_tokens
        super().__post_init__()  # validates the fault and quota fields

    def fault_settings(self) -> FaultSettings:
        """The start-up fault and quota settings (the same-named fields of this config)."""
        return FaultSettings(**{name: getattr(self, name) for name in fault_field_names()})

    def catalogue(self) -> Catalogue:
        """The model catalogue: built-in, with ``model_catalogue`` merged in."""
        return build_catalogue(self.model_catalogue)

    def token_table(self) -> TokenTable:
        """Every answering model's billing (or ``flat_image_tokens`` for all images)."""
        return self.catalogue().token_table(self.flat_image_tokens)

    def accepts_key(self, key: str) -> bool:
        """True if ``key`` (already known to be non-empty) may call the API."""
        return not self.api_keys or key in self.api_keys
