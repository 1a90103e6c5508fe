"""Service tiers a job may ask for, and the rule that resolves ``auto`` to a lane.

Pure: the caller passes the expected turnaround per tier (measured p90, else a prior) and the
tiers the model has a price for on the day; nothing here reads a clock, a table or a setting.

The ``auto`` rule (README, "How auto decides"): a tier *fits* when its expected turnaround
times the safety factor, plus the margins its lane needs (the batch lane's gather wait and the
reserve before the deadline at which it hands a job to the standard lane; the flex lane's
reserve, kept before the deadline for a fallback to standard), is within the deadline; auto
takes batch if it fits, else flex if it fits, else standard. A tier whose lane is off (the
caller says why) is skipped. Batch comes before flex although both cost half: it holds no
worker thread and uses none of the per-minute quota urgent jobs need. Priority is never
chosen by auto (it costs more). A tier the model has no price for is skipped.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from visionq.vision.catalogue import ServiceTier

__all__ = [
    "AUTO_ORDER", "MIN_FLEX_CALL_S", "Margin", "Tier", "TierChoice", "choose_tier",
    "deadline_for", "shortest_deadline",
]  # fmt: skip

# Below this many seconds for one flex call (the deadline less VISIONQ_FLEX_RESERVE_S), the
# flex lane does not send it at flex (worker/tiering.flex_timeout): the job goes to standard.
MIN_FLEX_CALL_S = 1.0


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


@dataclass(frozen=True)
class Margin:
    """Time a tier's lane needs on top of the tier's turnaround, named for the reason
    (e.g. the batch lane's "gather" wait and its "sync reserve")."""

    label: str
    seconds: float


def shortest_deadline(margins: Sequence[Margin], *, call_s: float = 0.0) -> float:
    """The shortest deadline a lane can serve a job in at its tier at all: its margins, plus
    ``call_s`` for the call itself (``MIN_FLEX_CALL_S`` for flex)."""
    return call_s + sum(margin.seconds for margin in margins)


def _seconds(value: float) -> str:
    return f"{value:.0f} s"


def _needed(expected: float, safety: float, margins: Sequence[Margin]) -> float:
    return expected * safety + sum(margin.seconds for margin in margins)


def _describe(
    tier: ServiceTier,
    *,
    expected: float,
    safety: float,
    margins: Sequence[Margin],
    deadline_s: float,
    measured: bool | None,
) -> str:
    source = "" if measured is None else (" p90" if measured else " (prior)")
    verb = "<=" if _needed(expected, safety, margins) <= deadline_s else ">"
    added = "".join(f" + {margin.label} {_seconds(margin.seconds)}" for margin in margins)
    return (
        f"{tier.value}{source} {_seconds(expected)} x {safety:g}{added} {verb} "
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
    margins: Mapping[ServiceTier, Sequence[Margin]] | None = None,
    off: Mapping[ServiceTier, str] | None = None,
) -> TierChoice:
    """The lane for a job asking for ``tier`` with ``deadline_s`` seconds to its deadline.

    An explicit tier is its own lane (whether it is priced or its lane is on is the
    caller's check: it answers 422). ``auto`` follows the module's rule. ``measured`` names
    the tiers whose expected turnaround was measured (the others are priors); it only
    colours the reason. ``margins`` adds, per tier, what its lane needs beyond the
    turnaround; ``off`` names the tiers auto must not pick, with why.
    """
    if tier is not Tier.AUTO:
        lane = ServiceTier(tier.value)
        return TierChoice(lane, f"tier {lane.value} as asked", expected_s.get(lane))
    notes: list[str] = []
    for candidate in AUTO_ORDER:
        if off is not None and candidate in off:
            notes.append(off[candidate])
            continue
        if candidate not in priced:
            notes.append(f"{candidate.value} has no price for this model")
            continue
        expected = expected_s.get(candidate)
        if expected is None:
            notes.append(f"{candidate.value} turnaround unknown")
            continue
        known = None if measured is None else candidate in measured
        needs = () if margins is None else tuple(margins.get(candidate, ()))
        described = _describe(
            candidate,
            expected=expected,
            safety=safety,
            margins=needs,
            deadline_s=deadline_s,
            measured=known,
        )
        if _needed(expected, safety, needs) <= deadline_s:
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
