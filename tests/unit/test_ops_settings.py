"""The metrics and webhook settings (models/ops_settings.py, part of Settings)."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from visionq.models.settings import Settings, get_settings


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings(gemini_api_key=None)
    assert settings.metrics_token is None and settings.metrics_token_value() is None
    assert (settings.metrics_cache_s, settings.worker_metrics_port) == (5, 9101)
    assert settings.worker_metrics_host == "127.0.0.1"  # loopback: review R12
    assert settings.webhook_retry_delays_s == [5, 300, 1800, 7200, 18000, 36000]
    assert (settings.webhook_retry_window_s, settings.webhook_disable_after_s) == (86400, 86400)
    assert (settings.webhook_timeout_s, settings.webhook_max_in_flight) == (15, 8)
    assert settings.webhooks_enabled and not settings.webhook_require_https
    assert settings.webhook_result_max_bytes == 16384


def test_env_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISIONQ_WEBHOOK_RETRY_DELAYS_S", "[0.2, 0.5, 1]")
    monkeypatch.setenv("VISIONQ_WEBHOOK_RETRY_WINDOW_S", "120")
    monkeypatch.setenv("VISIONQ_METRICS_TOKEN", "s3cret")
    monkeypatch.setenv("VISIONQ_PUBLIC_URL", " https://visionq.example/ ")
    settings = get_settings()
    assert settings.webhook_retry_delays_s == [0.2, 0.5, 1]
    assert settings.metrics_token_value() == "s3cret"
    assert settings.public_url == "https://visionq.example"
    shown = settings.redacted()
    assert shown["metrics_token"] == "set" and "s3cret" not in str(shown)
    # compose's `${VAR:-}`: empty is the default (no token, default delays).
    monkeypatch.setenv("VISIONQ_METRICS_TOKEN", "")
    monkeypatch.setenv("VISIONQ_WEBHOOK_RETRY_DELAYS_S", "")
    monkeypatch.delenv("VISIONQ_WEBHOOK_RETRY_WINDOW_S")
    settings = get_settings()
    assert settings.metrics_token is None and settings.webhook_retry_delays_s[-1] == 36000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VISIONQ_WEBHOOK_RETRY_DELAYS_S": "[5, x]"}, "JSON list of seconds"),
        ({"VISIONQ_WEBHOOK_RETRY_DELAYS_S": "[]"}, "at least one delay"),
        ({"VISIONQ_WEBHOOK_RETRY_DELAYS_S": "[5, 0]"}, "above 0"),
        ({"VISIONQ_WEBHOOK_RETRY_WINDOW_S": "600"}, "VISIONQ_WEBHOOK_RETRY_WINDOW_S (600)"),
        ({"VISIONQ_WEBHOOK_DISABLE_AFTER_S": "30"}, "greater than or equal to 60"),
        ({"VISIONQ_WORKER_METRICS_PORT": "70000"}, "less than or equal to 65535"),
        ({"VISIONQ_CORS_ALLOW_ORIGINS": "https://ui.example/"}, "without a path"),
        ({"VISIONQ_CORS_ALLOW_ORIGINS": "ui.example"}, "'ui.example' is not an origin"),
        ({"VISIONQ_CORS_ALLOW_ORIGINS": "[https://x]"}, "a JSON list of origins"),
        ({"VISIONQ_CORS_MAX_AGE_S": "86401"}, "less than or equal to 86400"),
    ],
)
def test_bad_values_are_refused_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=re.escape(message)):
        get_settings()


def test_console_and_cors_defaults() -> None:
    """The console is on; CORS is off (same origin only) until origins are given."""
    settings = Settings(gemini_api_key=None)
    assert settings.console_enabled
    assert settings.cors_allow_origins == []
    assert settings.cors_max_age_s == 600


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        (
            "https://ui.example,http://localhost:5173",
            ["https://ui.example", "http://localhost:5173"],
        ),
        (' ["https://ui.example"] ', ["https://ui.example"]),
        ("*", ["*"]),
        ("http://[::1]:8080", ["http://[::1]:8080"]),
        ("", []),
    ],
)
def test_cors_origins_are_parsed(
    monkeypatch: pytest.MonkeyPatch, value: str, origins: list[str]
) -> None:
    monkeypatch.setenv("VISIONQ_CORS_ALLOW_ORIGINS", value)
    monkeypatch.setenv("VISIONQ_CORS_MAX_AGE_S", "0")
    monkeypatch.setenv("VISIONQ_CONSOLE_ENABLED", "false")
    settings = get_settings()
    assert settings.cors_allow_origins == origins
    assert settings.cors_max_age_s == 0 and not settings.console_enabled
