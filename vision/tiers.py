"""Service tiers a job may ask for, and the rule that resolves ``auto`` to a lane.

Pure: the caller passes the expected turnaround per tier (measured p90, else a prior) and the
tiers the model has a price for on the day; nothing here reads a clock, a table or a setting.

The ``auto`` rule (README, "How auto decides"): a tier *fits* when its expected turnaround
times the safety factor is within the deadline; auto takes batch if it fits, else flex if it
fits, else standard. Batch comes before flex although both cost half: it holds no worker
thread and uses none of the per-minute quota urgent jobs need. Priority is never chosen by
auto (it costs more). A tier the model has no price for is skipped.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from visionq.vision.catalogue import ServiceTier

__all__ = ["AUTO_ORDER", "Tier", "TierChoice", "choose_tier", "deadline_for"]


class Tier(enum.StrEnum):
    """What a job asks for: a service tier, or ``auto`` (the cheapest that meets the deadline)."""

    STANDARD = "standard"
    FLEX = "flex"
    PRIORITY = "priority"
    BATCH = "batch"
    AUTO = "auto"


# The cheaper tiers auto tries, best first; standard is what is left.
AUTO_ORDER: tuple[ServiceTier, ...] = (ServiceTier.BATCH, ServiceTier.FLEX)


@dataclass(frozen=True)
class TierChoice:
    """The lane a job runs in, why (for the estimate's assumptions), and the turnaround
    expected of that lane (None when nothing is known)."""

    lane: ServiceTier
    reason: str
    expected_s: float | None


def _seconds(value: float) -> str:
    return f"{value:.0f} s"


def _describe(
    tier: ServiceTier, expected: float, safety: float, deadline_s: float, measured: bool | None
) -> str:
    source = "" if measured is None else (" p90" if measured else " (prior)")
    verb = "<=" if expected * safety <= deadline_s else ">"
    return (
        f"{tier.value}{source} {_seconds(expected)} x {safety:g} {verb} "
        f"deadline {_seconds(deadline_s)}"
    )


def choose_tier(
    tier: Tier,
    *,
    deadline_s: float,
    expected_s: Mapping[ServiceTier, float],
    priced: Collection[ServiceTier],
    safety: float,
    measured: Collection[ServiceTier] | None = None,
) -> TierChoice:
    """The lane for a job asking for ``tier`` with ``deadline_s`` seconds to its deadline.

    An explicit tier is its own lane (whether it is priced is the caller's check: it answers
    tier_not_priced). ``auto`` follows the module's rule. ``measured`` names the tiers whose
    expected turnaround was measured (the others are priors); it only colours the reason.
    """
    if tier is not Tier.AUTO:
        lane = ServiceTier(tier.value)
        return TierChoice(lane, f"tier {lane.value} as asked", expected_s.get(lane))
    notes: list[str] = []
    for candidate in AUTO_ORDER:
        if candidate not in priced:
            notes.append(f"{candidate.value} has no price for this model")
            continue
        expected = expected_s.get(candidate)
        if expected is None:
            notes.append(f"{candidate.value} turnaround unknown")
            continue
        known = None if measured is None else candidate in measured
        described = _describe(candidate, expected, safety, deadline_s, known)
        if expected * safety <= deadline_s:
            return TierChoice(candidate, _reason(candidate, [described, *notes]), expected)
        notes.append(f"{described}: does not fit")
    lane = ServiceTier.STANDARD
    return TierChoice(lane, _reason(lane, notes or ["urgent"]), expected_s.get(lane))


def _reason(lane: ServiceTier, notes: list[str]) -> str:
    return f"tier auto → {lane.value}: " + "; ".join(notes)


def deadline_for(tier: Tier, given_s: int | None, defaults: Mapping[str, float]) -> float:
    """Seconds from submission to the job's deadline: the one given, else the tier's default
    (``VISIONQ_TIER_DEADLINES_S``, keyed by tier name)."""
    if given_s is not None:
        return float(given_s)
    try:
        return float(defaults[tier.value])
    except KeyError:
        raise ValueError(
            f"VISIONQ_TIER_DEADLINES_S has no default for tier {tier.value}; "
            "add it, or send options.deadline_s"
        ) from None
