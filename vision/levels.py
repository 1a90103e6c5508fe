"""Gemini's enum levels (media resolution, thinking) read in any spelling users send.

Gemini's own enum names (``MEDIA_RESOLUTION_LOW``, ``THINKING_LEVEL_LOW`` as some SDKs
print it), the short names (``LOW``) and lower case are the same level; everything visionq
stores and sends uses the short, upper-case name.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BeforeValidator

MediaLevel = Literal["LOW", "MEDIUM", "HIGH", "ULTRA_HIGH"]
MEDIA_LEVELS: tuple[MediaLevel, ...] = ("LOW", "MEDIUM", "HIGH", "ULTRA_HIGH")
_MEDIA_PREFIX = "MEDIA_RESOLUTION_"
_THINKING_PREFIX = "THINKING_LEVEL_"


class ThinkingLevel(enum.StrEnum):
    """Gemini 3's thinking levels, lowest first."""

    MINIMAL = "MINIMAL"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


def _short(value: str, prefix: str) -> str:
    return value.strip().upper().removeprefix(prefix)


def normalise_level(level: str | None) -> MediaLevel | None:
    """LOW/MEDIUM/HIGH/ULTRA_HIGH from any accepted spelling; None for unset/unspecified."""
    if level is None:
        return None
    name = _short(level, _MEDIA_PREFIX)
    if name in ("", "UNSPECIFIED"):
        return None
    for known in MEDIA_LEVELS:
        if name == known:
            return known
    raise ValueError(
        f"unknown media_resolution {level!r}; expected one of {', '.join(MEDIA_LEVELS)} "
        f"(or Gemini's spelling, {_MEDIA_PREFIX}LOW ...)"
    )


def normalise_thinking_level(level: str | None) -> ThinkingLevel | None:
    """MINIMAL/LOW/MEDIUM/HIGH from any accepted spelling; None for unset/unspecified."""
    if level is None:
        return None
    name = _short(level, _THINKING_PREFIX)
    if name in ("", "UNSPECIFIED"):
        return None
    try:
        return ThinkingLevel(name)
    except ValueError:
        choices = ", ".join(level.value for level in ThinkingLevel)
        raise ValueError(f"unknown thinking_level {level!r}; expected one of {choices}") from None


def _media_input(value: object) -> object:
    return normalise_level(value) if isinstance(value, str) else value


def _thinking_input(value: object) -> object:
    return normalise_thinking_level(value) if isinstance(value, str) else value


# Option types that take any spelling and hold the short name. None is inside the
# annotation so that Gemini's *_UNSPECIFIED spellings, which normalise to None, mean unset.
MediaLevelOption = Annotated[MediaLevel | None, BeforeValidator(_media_input)]
ThinkingLevelOption = Annotated[ThinkingLevel | None, BeforeValidator(_thinking_input)]
