"""VISIONQ_RATE_LIMITS as JSON: per-model or all-models ("*") entries with requests,
input tokens, estimated dollars and their window, parsed once when settings load
(models/ratelimits.parse_quotas) into the typed quotas the worker's limiter takes."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from visionq.models.ratelimits import DEFAULT_USD_WINDOW_S, ModelQuota, parse_quotas
from visionq.models.settings import Settings


def test_dollar_budgets_parse_from_settings_json() -> None:
    settings = Settings(
        rate_limits={
            "*": {"usd": 10},
            "gemini-3.8-flash": {"rpm": 60, "usd": "2.5", "window_s": 60},
        }
    )
    assert settings.rate_limits == {
        "*": ModelQuota(rpm=None, tpm=None, usd=Decimal(10)),
        "gemini-3.8-flash": ModelQuota(rpm=60, tpm=None, usd=Decimal("2.5"), window_s=60.0),
    }
    for bad in ({"*": {"usd": 0}}, {"*": {"usd": "x"}}, {"*": {"window_s": 600}},
                {"*": {"usd": 1, "window_s": -1}}, {"*": {"usd": "NaN"}}):  # fmt: skip
        with pytest.raises(ValueError, match="rate_limits"):
            Settings(rate_limits=bad)


def test_settings_hold_typed_quotas_and_show_them_as_json() -> None:
    """The worker reads settings.rate_limits as is; `visionq config` prints it as JSON that
    parses back to the same quotas; an empty variable (compose's default) means none."""
    settings = Settings(rate_limits='{"*": {"usd": 10}, "m": {"rpm": 5, "window_s": 30}}')
    assert all(isinstance(quota, ModelQuota) for quota in settings.rate_limits.values())
    shown = json.loads(json.dumps(settings.redacted()))["rate_limits"]
    assert shown == {"*": {"usd": "10"}, "m": {"rpm": 5, "window_s": 30.0}}
    assert parse_quotas(shown) == settings.rate_limits
    assert Settings(rate_limits=settings.rate_limits).rate_limits == settings.rate_limits
    assert Settings(rate_limits=" ").rate_limits == {} == Settings().rate_limits


def test_a_dollar_window_defaults_to_gemini_s_ten_minutes() -> None:
    assert parse_quotas({"*": {"usd": 10}})["*"].window_s is None
    assert DEFAULT_USD_WINDOW_S == 600.0


def test_settings_check_the_limits_with_the_limiters_own_rules() -> None:
    """One set of rules (models/ratelimits.py): the settings' error is the limiter's."""
    bad = {"gemini-3.8-flash": {"rpm": 5, "rps": 1}}
    with pytest.raises(ValueError) as limiter_error:
        parse_quotas(bad)
    with pytest.raises(ValueError, match="rate_limits") as settings_error:
        Settings(rate_limits=bad)
    assert str(limiter_error.value) in str(settings_error.value)
