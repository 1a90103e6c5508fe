"""Tenant weights for fair share (``VISIONQ_TENANT_WEIGHTS``): a JSON object of tenant to a
positive number; a tenant not named weighs 1.0. A tenant of weight 2 gets twice the job
starts of a tenant of weight 1 while both have jobs waiting (models/fairqueue.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

DEFAULT_WEIGHT = 1.0
# A bound on the ratio between tenants: beyond it one tenant would in effect starve the
# others (and Infinity, which JSON parsing accepts, would start only that tenant's jobs).
MAX_WEIGHT = 1000.0


def parse_weights(value: object) -> dict[str, float]:
    """The weights from the setting's raw value (JSON text or a mapping); raises ValueError
    saying what to fix."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(
                'VISIONQ_TENANT_WEIGHTS must be a JSON object such as {"acme": 2, "free": 0.5}'
                f" ({exc})"
            ) from exc
    if not isinstance(value, Mapping):
        raise ValueError('VISIONQ_TENANT_WEIGHTS must be a JSON object such as {"acme": 2}')
    weights: dict[str, float] = {}
    for tenant, weight in value.items():
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or not 0 < weight <= MAX_WEIGHT
        ):
            raise ValueError(
                f"VISIONQ_TENANT_WEIGHTS: the weight of tenant {tenant!r} must be a finite"
                f" number > 0 and <= {MAX_WEIGHT:g} (got {weight!r}); give a ratio such as"
                " 2 or 0.5, or leave a tenant out for the default 1.0"
            )
        weights[str(tenant)] = float(weight)
    return weights


def weight_of(weights: Mapping[str, float], tenant: str) -> float:
    """The tenant's weight (1.0 when not configured)."""
    return weights.get(tenant, DEFAULT_WEIGHT)
