"""What a flex call does after a shed or a timeout (worker/tiering.py), and how a call's
served tier is read (x-gemini-service-tier)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.genai import types

from visionq.models.settings import Settings
from visionq.vision.catalogue import ServiceTier
from visionq.worker.answers import served_tier
from visionq.worker.errors import GeminiCallError
from visionq.worker.tiering import after_flex_error, flex_timeout, lane_tier, served_as

NOW = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Flex calls expected to take 60 s; 300 s kept before the deadline for standard.
    return Settings(
        data_dir=tmp_path, retry_base_s=2.0, retry_max_delay_s=30.0, flex_reserve_s=300.0,
        flex_max_sheds=4, tier_prior_s='{"flex": 60}',
    )  # fmt: skip


def _shed(status: int = 503, **kwargs: object) -> GeminiCallError:
    return GeminiCallError(
        "gemini_unavailable", "Gemini answered 503 UNAVAILABLE", http_status=status,
        retryable=True, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def _at(seconds_left: float) -> datetime:
    return NOW + timedelta(seconds=seconds_left)


def test_a_shed_is_asked_again_at_flex_while_the_deadline_allows(settings: Settings) -> None:
    step = after_flex_error(_shed(), now=NOW, deadline_at=_at(3600), sheds=1, settings=settings)
    assert (step.kind, step.delay_s) == ("retry_flex", 2.0)
    third = after_flex_error(_shed(429), now=NOW, deadline_at=_at(3600), sheds=3,
                             settings=settings)  # fmt: skip
    assert (third.kind, third.delay_s) == ("retry_flex", 8.0)
    # Gemini's RetryInfo is a floor.
    asked = after_flex_error(_shed(retry_delay_s=20.0), now=NOW, deadline_at=_at(3600), sheds=1,
                             settings=settings)  # fmt: skip
    assert asked.delay_s == 20.0


def test_a_shed_falls_back_when_another_flex_call_would_eat_the_reserve(
    settings: Settings,
) -> None:
    # 2 s delay + 60 s call must end 300 s before the deadline: 362 s left is enough, 361 not.
    fits = after_flex_error(_shed(), now=NOW, deadline_at=_at(362), sheds=1, settings=settings)
    assert fits.kind == "retry_flex"
    late = after_flex_error(_shed(), now=NOW, deadline_at=_at(361), sheds=1, settings=settings)
    assert late.kind == "fallback"
    assert "another flex call would not end 300 s before the deadline" in late.reason


def test_too_many_sheds_or_a_timeout_fall_back(settings: Settings) -> None:
    many = after_flex_error(_shed(), now=NOW, deadline_at=_at(86_400), sheds=5, settings=settings)
    assert many.kind == "fallback" and "VISIONQ_FLEX_MAX_SHEDS=4" in many.reason
    timeout = GeminiCallError("gemini_timeout", "no answer in time", retryable=True)
    step = after_flex_error(timeout, now=NOW, deadline_at=_at(86_400), sheds=0, settings=settings)
    assert (step.kind, step.reason) == ("fallback", "the flex call timed out")


def test_other_errors_are_no_flex_matter(settings: Settings) -> None:
    for error in (
        GeminiCallError("gemini_internal", "500", http_status=500, retryable=True),
        GeminiCallError("gemini_invalid_argument", "400", http_status=400),
        _shed(429, daily_quota=True),
        GeminiCallError("blocked_prompt", "blocked", http_status=200),
    ):
        step = after_flex_error(error, now=NOW, deadline_at=_at(3600), sheds=0, settings=settings)
        assert step.kind == "default", error


def test_the_flex_timeout_ends_the_call_before_the_reserve(settings: Settings) -> None:
    assert flex_timeout(NOW, _at(86_400), settings) == settings.flex_timeout_s
    assert flex_timeout(NOW, _at(400), settings) == 100.0
    assert flex_timeout(NOW, _at(300.5), settings) is None
    assert flex_timeout(NOW, None, settings) == settings.flex_timeout_s


def test_lanes_and_served_tiers() -> None:
    assert lane_tier("flex") is ServiceTier.FLEX
    assert lane_tier("batch") is ServiceTier.STANDARD  # released to the sync lane
    assert lane_tier("nonsense") is ServiceTier.STANDARD
    assert served_as("standard", ServiceTier.PRIORITY) is ServiceTier.STANDARD
    assert served_as(None, ServiceTier.FLEX) is ServiceTier.FLEX
    assert served_as("turbo", ServiceTier.FLEX) is ServiceTier.FLEX


def test_the_served_tier_is_read_from_the_header() -> None:
    def response(headers: dict[str, str] | None) -> types.GenerateContentResponse:
        http = types.HttpResponse(headers=headers) if headers is not None else None
        return types.GenerateContentResponse(sdk_http_response=http)

    assert served_tier(response({"X-Gemini-Service-Tier": "STANDARD"}), "priority") == "standard"
    assert served_tier(response({"x-gemini-service-tier": "flex"}), "flex") == "flex"
    assert served_tier(response({}), "flex") == "flex"
    assert served_tier(response(None), "priority") == "priority"
