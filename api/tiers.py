"""What the API expects each service tier to take, for ``auto``: the measured p90 turnaround
per model and tier (table tier_turnarounds, refreshed by the worker's batch lane), else the
prior of VISIONQ_TIER_PRIOR_S. Read through a short in-process cache: one small SELECT per
refresh, whatever the submit rate."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from visionq.api.errors import ApiError
from visionq.models.settings import Settings
from visionq.models.tiers import read_turnarounds
from visionq.vision.catalogue import Catalogue, ServiceTier
from visionq.vision.costing import today
from visionq.vision.tasks import JobOptions
from visionq.vision.tiers import (
    MIN_FLEX_CALL_S,
    Margin,
    Tier,
    TierChoice,
    choose_tier,
    deadline_for,
    shortest_deadline,
)

__all__ = [
    "BATCH_LANE_OFF", "CACHE_TTL_S", "Expected", "TurnaroundCache", "batch_margins",
    "check_deadline", "check_lane_on", "check_priced", "deadline_seconds", "flex_margins",
    "lane_margins", "minimum_deadline", "priced_tiers", "requested_tier", "resolve_lane",
]  # fmt: skip

BATCH_LANE_OFF = "batch lane off (VISIONQ_BATCH_LANE_ENABLED=false)"

# How long a read of the table serves submits; the worker refreshes the table every
# VISIONQ_BATCH_POLL_S (30 s by default), so fresher reads would see the same rows.
CACHE_TTL_S = 30.0


@dataclass(frozen=True)
class Expected:
    """The turnaround expected per tier for one model, and which of them were measured
    (the others are priors)."""

    seconds: dict[ServiceTier, float]
    measured: frozenset[ServiceTier]


def _read(session: Session) -> dict[tuple[str, str], tuple[int, float]]:
    """(model, tier) -> (samples, p90 seconds) of every measured row."""
    return {key: (row.samples, row.p90_s) for key, row in read_turnarounds(session).items()}


class TurnaroundCache:
    """The measured turnarounds, read at most once per ``ttl_s`` (thread-safe: submits run
    in the thread pool)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        ttl_s: float = CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._priors: Mapping[ServiceTier, float] = settings.tier_prior_s
        self._min_samples = settings.tier_min_samples
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], tuple[int, float]] = {}
        self._read_at: float | None = None
        self.reads = 0  # how many times the table was read (tests)

    def _current(self) -> dict[tuple[str, str], tuple[int, float]]:
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._ttl_s:
                with self._sessions() as session:
                    self._rows = _read(session)
                self._read_at = now
                self.reads += 1
            return self._rows

    def lookup(self, model: str) -> Expected:
        """Per tier: the measured p90 when at least VISIONQ_TIER_MIN_SAMPLES jobs were
        measured, else the prior."""
        rows = self._current()
        seconds = dict(self._priors)
        measured: set[ServiceTier] = set()
        for tier in ServiceTier:
            found = rows.get((model, tier.value))
            if found is not None and found[0] >= self._min_samples:
                seconds[tier] = found[1]
                measured.add(tier)
        return Expected(seconds, frozenset(measured))

    def expected(self, model: str) -> dict[ServiceTier, float]:
        """The turnaround expected of each tier for ``model`` (seconds)."""
        return self.lookup(model).seconds


def requested_tier(options: JobOptions, settings: Settings) -> Tier:
    """The tier a job asks for: options.tier, else VISIONQ_TIER_DEFAULT."""
    return options.tier if options.tier is not None else Tier(settings.tier_default)


def deadline_seconds(options: JobOptions, settings: Settings) -> float:
    """Seconds from submission to the job's deadline: options.deadline_s, else its tier's
    default (VISIONQ_TIER_DEADLINES_S)."""
    return deadline_for(
        requested_tier(options, settings), options.deadline_s, settings.tier_deadlines_s
    )


def priced_tiers(catalogue: Catalogue, model: str) -> frozenset[ServiceTier]:
    """The tiers ``model`` has a price for today (none for a model the catalogue lacks)."""
    entry = catalogue.entry(model)
    if entry is None:
        return frozenset()
    day = today()
    return frozenset(tier for tier in ServiceTier if entry.price(day, tier) is not None)


def check_priced(options: JobOptions, model: str, settings: Settings, catalogue: Catalogue) -> None:
    """422 tier_not_priced for an explicit tier other than standard that ``model`` has no
    price for today: such a call could be neither estimated nor billed. (A standard job on
    an unpriced model is the older, separate case: its cost is unknown, cost_unbounded for
    a tenant with a budget.)"""
    tier = requested_tier(options, settings)
    if tier in (Tier.AUTO, Tier.STANDARD):
        return
    if ServiceTier(tier.value) in priced_tiers(catalogue, model):
        return
    raise ApiError(
        "tier_not_priced",
        f"No {tier.value} price for {model} on {today().isoformat()}: use tier standard (or "
        "auto), or add the price to the model catalogue (VISIONQ_MODELS_FILE).",
    )


def check_lane_on(options: JobOptions, settings: Settings) -> None:
    """422 tier_unavailable for an explicit tier batch while the batch lane is off
    (VISIONQ_BATCH_LANE_ENABLED=false): no worker would ever gather the job."""
    if settings.batch_lane_enabled or requested_tier(options, settings) is not Tier.BATCH:
        return
    raise ApiError(
        "tier_unavailable",
        "Tier batch is off on this deployment (VISIONQ_BATCH_LANE_ENABLED=false): no Gemini "
        "batch would ever run the job. Use tier flex (also half price) or auto, or ask the "
        "operator to turn the batch lane on.",
    )


def batch_margins(settings: Settings) -> tuple[Margin, ...]:
    """What the batch lane needs beyond a batch's turnaround to serve a job in a batch: the
    gather wait (VISIONQ_BATCH_GATHER_S, plus one lane tick, VISIONQ_BATCH_POLL_S) and the
    reserve at which its watchdog hands a job to the standard lane
    (VISIONQ_BATCH_SYNC_RESERVE_S)."""
    return (
        Margin("gather", settings.batch_gather_s + settings.batch_poll_s),
        Margin("sync reserve", settings.batch_sync_reserve_s),
    )


def flex_margins(settings: Settings) -> tuple[Margin, ...]:
    """What the flex lane needs beyond a flex call's turnaround: the reserve it keeps before
    the deadline for a fallback to standard (VISIONQ_FLEX_RESERVE_S). Its flex calls are cut
    to end there (worker/tiering.flex_timeout), so a flex call that needs longer never
    answers at flex."""
    return (Margin("flex reserve", settings.flex_reserve_s),)


def lane_margins(settings: Settings) -> dict[ServiceTier, tuple[Margin, ...]]:
    """Per cheaper tier, what its lane needs on top of the turnaround (auto's fit)."""
    return {ServiceTier.BATCH: batch_margins(settings), ServiceTier.FLEX: flex_margins(settings)}


def minimum_deadline(tier: Tier, settings: Settings) -> int | None:
    """The shortest deadline (whole seconds) at which an explicit flex or batch job can run
    at its tier at all; None for the other tiers."""
    if tier is Tier.FLEX:
        return math.ceil(shortest_deadline(flex_margins(settings), call_s=MIN_FLEX_CALL_S))
    if tier is Tier.BATCH:
        return math.ceil(shortest_deadline(batch_margins(settings)))
    return None


def check_deadline(options: JobOptions, settings: Settings) -> None:
    """422 deadline_too_short for an explicit flex or batch job whose deadline its lane can
    never serve at that tier (it would be estimated and held at half price, then answered
    and billed at standard): the message names the minimum, from the settings."""
    tier = requested_tier(options, settings)
    minimum = minimum_deadline(tier, settings)
    deadline = deadline_seconds(options, settings)
    if minimum is None or deadline >= minimum:
        return
    if tier is Tier.FLEX:
        why = (
            f"the flex lane keeps VISIONQ_FLEX_RESERVE_S ({settings.flex_reserve_s:g} s) "
            "before the deadline for a fallback to standard"
        )
    else:
        why = (
            "the batch lane gathers a job for up to VISIONQ_BATCH_GATHER_S + "
            f"VISIONQ_BATCH_POLL_S ({settings.batch_gather_s + settings.batch_poll_s:g} s) "
            "and hands it to standard VISIONQ_BATCH_SYNC_RESERVE_S "
            f"({settings.batch_sync_reserve_s:g} s) before its deadline"
        )
    raise ApiError(
        "deadline_too_short",
        f"Tier {tier.value} needs deadline_s of at least {minimum} s on this deployment "
        f"({why}); a deadline of {deadline:g} s would never run at {tier.value}. Send a "
        "longer deadline_s, or use tier auto (the cheapest tier that meets the deadline) "
        "or standard.",
    )


def resolve_lane(
    options: JobOptions,
    model: str,
    settings: Settings,
    catalogue: Catalogue,
    turnarounds: TurnaroundCache | None,
) -> TierChoice:
    """The lane a job runs in (vision/tiers.py's rule for auto, over the measured
    turnarounds and the tiers priced today); without a cache, the priors."""
    tier = requested_tier(options, settings)
    if turnarounds is not None and tier is Tier.AUTO:
        expected = turnarounds.lookup(model)
    else:
        expected = Expected(dict(settings.tier_prior_s), frozenset())
    return choose_tier(
        tier,
        deadline_s=deadline_seconds(options, settings),
        expected_s=expected.seconds,
        priced=priced_tiers(catalogue, model),
        safety=settings.tier_safety,
        measured=expected.measured,
        margins=lane_margins(settings),
        off=None if settings.batch_lane_enabled else {ServiceTier.BATCH: BATCH_LANE_OFF},
    )
