"""Settings of one emulator instance, passed to ``create_app`` (never read from globals)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_INLINE_LIMIT_BYTES = 20 * 1024 * 1024

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
    """

    api_keys: tuple[str, ...] = ()
    latency_ms: float = 0.0
    inline_limit_bytes: int = DEFAULT_INLINE_LIMIT_BYTES
    models: tuple[str, ...] = DEFAULT_MODELS

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if self.inline_limit_bytes <= 0:
            raise ValueError("inline_limit_bytes must be > 0")
        if not self.models:
            raise ValueError("at least one model must be known")

    def accepts_key(self, key: str) -> bool:
        """True if ``key`` (already known to be non-empty) may call the API."""
        return not self.api_keys or key in self.api_keys

    def knows_model(self, model: str) -> bool:
        """True if ``model`` (without the ``models/`` prefix) is served."""
        return model in self.models
