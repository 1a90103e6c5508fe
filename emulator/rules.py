"""Per-model request rules: thinking settings and media resolution, with Google's 400s.

Checked against the catalogue entry of the model that answers (after aliases and
routing), in the order the API was seen to apply them: level and budget together, then
the level, then the budget; then part-level media resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

from visionq.emulator import errors
from visionq.emulator.catalog import Catalogue, ModelSpec
from visionq.emulator.request import GenerationSettings, Part
from visionq.emulator.tokens import normalise_level

THINKING_LEVEL_PREFIX = "THINKING_LEVEL_"
# thinking_budget -1 asks the model to choose (dynamic thinking).
DYNAMIC_BUDGET = -1
# The only level generationConfig.mediaResolution does not take (per part only).
PART_ONLY_LEVEL = "ULTRA_HIGH"


def _level(value: str | None) -> str | None:
    if not value:
        return None
    level = value.strip().upper().removeprefix(THINKING_LEVEL_PREFIX)
    return None if level in ("", "UNSPECIFIED") else level


def thoughts_for(spec: ModelSpec, settings: GenerationSettings, catalogue: Catalogue) -> int:
    """Deterministic thoughts tokens of one call, or the API's 400 for a bad thinkingConfig.

    A level costs the catalogue's ``thoughts_tokens`` of that level; a budget b costs
    min(b, ``budget_cap``); -1 (dynamic) and no setting cost the default level's count on a
    model that thinks by default, nothing otherwise; budget 0 turns thinking off where the
    model allows it.
    """
    level = _level(settings.thinking_level)
    budget = settings.thinking_budget
    if level is not None and budget is not None:
        raise errors.thinking_level_and_budget()
    rules = spec.thinking
    if rules is None:
        return 0
    if level is not None:
        if level not in rules.levels:
            raise errors.thinking_level_unsupported(level)
        return catalogue.thoughts_by_level[level]
    default = catalogue.thoughts_by_level[rules.default_level] if rules.default_level else 0
    if budget is None:
        return default if rules.default_on else 0
    if budget == DYNAMIC_BUDGET:
        return default or catalogue.thoughts_by_level["LOW"]
    if budget == 0:
        if not rules.budget_zero:
            raise errors.thinking_budget_zero()
        return 0
    if not rules.budget_min <= budget <= rules.budget_max:
        raise errors.thinking_budget_range(budget, rules.budget_min, rules.budget_max)
    return min(budget, catalogue.thoughts_budget_cap)


def check_media_resolution(
    spec: ModelSpec, settings: GenerationSettings, parts: Sequence[Part]
) -> None:
    """400s for part-level levels on a model without support, and ULTRA_HIGH at the top."""
    top = settings.media_resolution
    if top is not None and normalise_level(top) == PART_ONLY_LEVEL:
        raise errors.media_resolution_value("generation_config.media_resolution", top)
    per_part = [p for p in parts if getattr(p, "media_resolution", None) is not None]
    if per_part and not spec.per_part_media_resolution:
        raise errors.per_part_media_resolution_unsupported()
