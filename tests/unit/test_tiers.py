"""The tier rule (vision/tiers.py) and the tier options (vision/tasks.py JobOptions)."""

from __future__ import annotations

import pytest
import typer
from pydantic import ValidationError

from visionq.vision.catalogue import ServiceTier
from visionq.vision.tasks import JobOptions, TaskKind, cache_key
from visionq.vision.tiers import Margin, Tier, choose_tier, deadline_for

PRIORS = {
    ServiceTier.STANDARD: 60.0,
    ServiceTier.PRIORITY: 30.0,
    ServiceTier.FLEX: 900.0,
    ServiceTier.BATCH: 86_400.0,
}
ALL = frozenset(ServiceTier)


@pytest.mark.parametrize(
    ("deadline_s", "expected", "priced", "lane"),
    [
        # Priors only: batch needs 36 h, flex 22.5 min.
        (7_200, PRIORS, ALL, ServiceTier.FLEX),
        (1_349, PRIORS, ALL, ServiceTier.STANDARD),
        (1_350, PRIORS, ALL, ServiceTier.FLEX),
        (129_600, PRIORS, ALL, ServiceTier.BATCH),
        # Measured batch turnaround of 20 min: a 2-hour deadline goes to batch.
        (7_200, {**PRIORS, ServiceTier.BATCH: 1_200.0}, ALL, ServiceTier.BATCH),
        # A tier without a price is skipped.
        (129_600, PRIORS, ALL - {ServiceTier.BATCH}, ServiceTier.FLEX),
        (7_200, PRIORS, {ServiceTier.STANDARD}, ServiceTier.STANDARD),
        # A tier without any turnaround is skipped too.
        (7_200, {ServiceTier.STANDARD: 60.0}, ALL, ServiceTier.STANDARD),
    ],
)
def test_auto_picks_the_cheapest_tier_that_fits(
    deadline_s: float,
    expected: dict[ServiceTier, float],
    priced: frozenset[ServiceTier],
    lane: ServiceTier,
) -> None:
    choice = choose_tier(
        Tier.AUTO, deadline_s=deadline_s, expected_s=expected, priced=priced, safety=1.5
    )
    assert choice.lane is lane
    assert choice.expected_s == expected.get(lane)
    assert choice.reason.startswith(f"tier auto → {lane.value}: ")


def test_auto_never_picks_priority() -> None:
    fast = {tier: 1.0 for tier in ServiceTier}
    choice = choose_tier(
        Tier.AUTO, deadline_s=60, expected_s=fast, priced={ServiceTier.PRIORITY}, safety=1.5
    )
    assert choice.lane is ServiceTier.STANDARD


def test_the_reason_says_what_was_measured_and_what_did_not_fit() -> None:
    choice = choose_tier(
        Tier.AUTO,
        deadline_s=3_600,
        expected_s={**PRIORS, ServiceTier.FLEX: 412.0},
        priced=ALL,
        safety=1.5,
        measured={ServiceTier.FLEX},
    )
    assert choice.reason == (
        "tier auto → flex: flex p90 412 s x 1.5 <= deadline 3600 s; "
        "batch (prior) 86400 s x 1.5 > deadline 3600 s: does not fit"
    )


# The batch lane's needs (api/tiers.batch_margins with the defaults): gather 120 s + one
# 30 s tick, and the 600 s before the deadline at which its watchdog sends a job to standard.
BATCH_MARGINS = {ServiceTier.BATCH: (Margin("gather", 150.0), Margin("sync reserve", 600.0))}
FAST_BATCH = {**PRIORS, ServiceTier.BATCH: 12.0}


@pytest.mark.parametrize(
    ("deadline_s", "lane"),
    [
        # A measured 12 s batch p90 fits 18 s, but the lane holds a job up to 150 s and
        # hands it to standard 600 s before its deadline: batch needs 768 s.
        (60, ServiceTier.STANDARD),
        (767, ServiceTier.STANDARD),
        (768, ServiceTier.BATCH),
        (1_349, ServiceTier.BATCH),
    ],
)
def test_batch_fits_only_with_what_the_batch_lane_needs(
    deadline_s: float, lane: ServiceTier
) -> None:
    choice = choose_tier(
        Tier.AUTO, deadline_s=deadline_s, expected_s=FAST_BATCH, priced=ALL, safety=1.5,
        margins=BATCH_MARGINS,
    )  # fmt: skip
    assert choice.lane is lane


def test_the_reason_shows_the_batch_lanes_margins() -> None:
    choice = choose_tier(
        Tier.AUTO, deadline_s=60, expected_s=FAST_BATCH, priced=ALL, safety=1.5,
        measured={ServiceTier.BATCH}, margins=BATCH_MARGINS,
    )  # fmt: skip
    assert choice.reason == (
        "tier auto → standard: batch p90 12 s x 1.5 + gather 150 s + sync reserve 600 s > "
        "deadline 60 s: does not fit; flex (prior) 900 s x 1.5 > deadline 60 s: does not fit"
    )


def test_auto_skips_a_lane_that_is_off() -> None:
    off = {ServiceTier.BATCH: "batch lane off (VISIONQ_BATCH_LANE_ENABLED=false)"}
    choice = choose_tier(
        Tier.AUTO, deadline_s=200_000, expected_s=PRIORS, priced=ALL, safety=1.5, off=off
    )
    assert choice.lane is ServiceTier.FLEX
    assert choice.reason.endswith("; batch lane off (VISIONQ_BATCH_LANE_ENABLED=false)")


@pytest.mark.parametrize("tier", [t for t in Tier if t is not Tier.AUTO])
def test_an_explicit_tier_is_its_own_lane(tier: Tier) -> None:
    choice = choose_tier(tier, deadline_s=60, expected_s=PRIORS, priced=(), safety=1.5)
    assert choice.lane.value == tier.value
    assert choice.expected_s == PRIORS[ServiceTier(tier.value)]


def test_deadline_defaults_per_tier() -> None:
    defaults = {"standard": 1800, "flex": 3600, "auto": 7200}
    assert deadline_for(Tier.FLEX, None, defaults) == 3600.0
    assert deadline_for(Tier.FLEX, 120, defaults) == 120.0
    with pytest.raises(ValueError, match="VISIONQ_TIER_DEADLINES_S has no default for tier batch"):
        deadline_for(Tier.BATCH, None, defaults)


def test_tier_options_are_checked() -> None:
    assert JobOptions.model_validate({"tier": "auto", "deadline_s": 7200}).tier is Tier.AUTO
    for bad in ({"tier": "cheap"}, {"deadline_s": 59}, {"deadline_s": 8 * 86_400}):
        with pytest.raises(ValidationError):
            JobOptions.model_validate(bad)


def test_the_cache_key_is_the_same_across_tiers_and_deadlines() -> None:
    def key(**options: object) -> str:
        return cache_key(
            image_sha256s=["a" * 64],
            task=TaskKind.CAPTION,
            prompt=None,
            labels=None,
            schema=None,
            model="gemini-2.5-flash",
            options=JobOptions.model_validate(options),
        )

    plain = key()
    assert {key(tier=tier.value) for tier in Tier} == {plain}
    assert key(tier="batch", deadline_s=86_400) == plain
    assert key(temperature=0.5, tier="flex") != plain


def test_the_cli_sends_tier_and_deadline() -> None:
    from visionq.cli.options import job_options, parse_deadline

    assert [parse_deadline(text) for text in ("7200", "90m", "2h", "1d", "1.5h", "60s")] == [
        7200, 5400, 7200, 86_400, 5400, 60,
    ]  # fmt: skip
    for bad in ("soon", "59", "8d", "-2h"):
        with pytest.raises(typer.BadParameter):
            parse_deadline(bad)
    assert job_options(None, tier=Tier.AUTO, deadline="2h") == {"tier": "auto", "deadline_s": 7200}
    assert job_options(["tier=flex"], deadline="90m") == {"tier": "flex", "deadline_s": 5400}
    with pytest.raises(typer.BadParameter, match="tier given twice"):
        job_options(["tier=flex"], tier=Tier.BATCH)


# The flex lane's need (api/tiers.flex_margins with the default VISIONQ_FLEX_RESERVE_S): a
# flex call is cut to end 300 s before the deadline, the rest is the fallback's.
FLEX_MARGINS = {**BATCH_MARGINS, ServiceTier.FLEX: (Margin("flex reserve", 300.0),)}
MEASURED_FLEX = {**PRIORS, ServiceTier.FLEX: 120.0}


@pytest.mark.parametrize(
    ("deadline_s", "lane"),
    [
        # A measured flex p90 of 120 s fits 180 s, but the lane keeps 300 s for the fallback.
        (180, ServiceTier.STANDARD),
        (479, ServiceTier.STANDARD),
        (480, ServiceTier.FLEX),
    ],
)
def test_flex_fits_only_with_the_flex_reserve(deadline_s: float, lane: ServiceTier) -> None:
    choice = choose_tier(
        Tier.AUTO, deadline_s=deadline_s, expected_s=MEASURED_FLEX, priced=ALL, safety=1.5,
        measured={ServiceTier.FLEX}, margins=FLEX_MARGINS,
    )  # fmt: skip
    assert choice.lane is lane
    assert "flex p90 120 s x 1.5 + flex reserve 300 s" in choice.reason


def test_the_shortest_deadline_of_a_lane() -> None:
    from visionq.api.tiers import minimum_deadline
    from visionq.models.settings import Settings

    settings = Settings(flex_reserve_s=20, batch_gather_s=2, batch_poll_s=1,
                        batch_sync_reserve_s=60)  # fmt: skip
    assert minimum_deadline(Tier.FLEX, settings) == 21  # reserve + one 1 s flex call
    assert minimum_deadline(Tier.BATCH, settings) == 63  # gather + tick + sync reserve
    assert minimum_deadline(Tier.FLEX, Settings()) == 301
    assert minimum_deadline(Tier.BATCH, Settings()) == 750
    for tier in (Tier.STANDARD, Tier.PRIORITY, Tier.AUTO):
        assert minimum_deadline(tier, Settings()) is None


@pytest.mark.parametrize(
    ("options", "fits"),
    [
        ({"tier": "flex", "deadline_s": 300}, False),
        ({"tier": "flex", "deadline_s": 301}, True),
        ({"tier": "batch", "deadline_s": 749}, False),
        ({"tier": "batch", "deadline_s": 750}, True),
        ({"tier": "batch"}, True),  # the default deadline (24 h)
        ({"tier": "auto", "deadline_s": 60}, True),
        ({"tier": "standard", "deadline_s": 60}, True),
    ],
)
def test_an_explicit_flex_or_batch_deadline_too_short_is_refused(
    options: dict[str, object], fits: bool
) -> None:
    from visionq.api.errors import ApiError
    from visionq.api.tiers import check_deadline
    from visionq.models.settings import Settings

    parsed = JobOptions.model_validate(options)
    if fits:
        check_deadline(parsed, Settings())
        return
    with pytest.raises(ApiError) as raised:
        check_deadline(parsed, Settings())
    assert raised.value.code == "deadline_too_short" and raised.value.status == 422
    minimum = "301" if options["tier"] == "flex" else "750"
    assert f"needs deadline_s of at least {minimum} s" in raised.value.message
    assert "use tier auto" in raised.value.message


@pytest.mark.parametrize("bad", [True, 1.5e3, "1500", 1500.0])
def test_deadline_is_a_strict_whole_number_of_seconds(bad: object) -> None:
    with pytest.raises(ValidationError, match="valid integer"):
        JobOptions.model_validate({"deadline_s": bad})
    assert JobOptions.model_validate({"deadline_s": 1500}).deadline_s == 1500
