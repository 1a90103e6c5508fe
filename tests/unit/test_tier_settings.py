"""The service tier and batch lane settings (models/tier_settings.py, part of Settings)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from visionq.models.settings import Settings, get_settings
from visionq.vision.catalogue import ServiceTier


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings(gemini_api_key=None)
    assert settings.tier_default == "standard"
    assert settings.tier_deadlines_s == {
        "standard": 1800, "priority": 1800, "flex": 3600, "batch": 86400, "auto": 7200,
    }  # fmt: skip
    assert settings.tier_prior_s[ServiceTier.BATCH] == 86400
    assert settings.tier_prior_s[ServiceTier.FLEX] == 900
    assert (settings.flex_timeout_s, settings.batch_max_running) == (900, 50)


def test_json_settings_are_read_from_the_environment_and_merged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VISIONQ_TIER_DEADLINES_S", '{"flex": 120}')
    monkeypatch.setenv("VISIONQ_TIER_PRIOR_S", '{"batch": 600}')
    settings = get_settings()
    assert settings.tier_deadlines_s["flex"] == 120
    assert settings.tier_deadlines_s["auto"] == 7200  # the others keep their defaults
    assert settings.tier_prior_s == {
        ServiceTier.STANDARD: 60, ServiceTier.PRIORITY: 30, ServiceTier.FLEX: 900,
        ServiceTier.BATCH: 600,
    }  # fmt: skip
    # Empty (compose's ${VAR:-}) is the defaults.
    monkeypatch.setenv("VISIONQ_TIER_PRIOR_S", "")
    assert get_settings().tier_prior_s[ServiceTier.BATCH] == 86400
    # `visionq config` prints them as JSON again.
    shown = get_settings().redacted()["tier_prior_s"]
    assert isinstance(shown, dict) and shown["batch"] == 86400


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tier_deadlines_s": '{"express": 60}'}, "unknown tier(s) express"),
        ({"tier_prior_s": '{"auto": 60}'}, "unknown tier(s) auto"),
        ({"tier_deadlines_s": "{flex: 1"}, "must be a JSON object"),
        ({"tier_deadlines_s": '{"flex": 0}'}, "above 0: flex=0"),
        ({"batch_max_running": 101}, "less than or equal to 100"),
        ({"tier_default": "cheap"}, "tier_default"),
        ({"batch_orphans": "ignore"}, "batch_orphans"),
        ({"batch_min_requests": 200, "batch_max_requests": 100}, "VISIONQ_BATCH_MIN_REQUESTS"),
        # A flex call longer than the job's run would be killed by the process watchdog.
        ({"flex_timeout_s": 1711}, "VISIONQ_JOB_DEADLINE_S - VISIONQ_LEASE_S = 1710"),
    ],
)
def test_bad_values_are_refused_with_what_to_do(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings(gemini_api_key=None, **changes)  # type: ignore[arg-type]


def test_an_unset_flex_timeout_is_lowered_to_fit_the_job_deadline() -> None:
    assert Settings(gemini_api_key=None, flex_timeout_s=1710).flex_timeout_s == 1710
    short = Settings(gemini_api_key=None, job_deadline_s=300, retry_max_delay_s=10)
    assert short.flex_timeout_s == 300 - 90
    tiny = Settings(gemini_api_key=None, job_deadline_s=0.5, retry_max_delay_s=0.02)
    assert tiny.flex_timeout_s == 0.25
