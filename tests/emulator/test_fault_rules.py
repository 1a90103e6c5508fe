"""Fault draws, settings validation, quota windows and 429 bodies, without a server."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from visionq.emulator import quota_errors
from visionq.emulator.__main__ import build_config, parse_args
from visionq.emulator.config import EmulatorConfig
from visionq.emulator.faults import FaultSettings, decide_fault, fault_field_names
from visionq.emulator.gate import seconds_until_pacific_midnight
from visionq.emulator.quota import QuotaTracker, QuotaViolation
from visionq.emulator.state import EmulatorState


def _draws(settings: FaultSettings, seed: int, count: int = 1000) -> Counter[str | None]:
    rng = random.Random(seed)
    return Counter(decide_fault(settings, rng) for _ in range(count))


def test_rates_are_roughly_honoured() -> None:
    settings = FaultSettings(fail_503_rate=0.1, fail_500_rate=0.2, fail_429_rate=0.3, hang_rate=0.5)
    counts = _draws(settings, seed=5)
    # Hangs are drawn only for calls that did not fail: 0.4 * 0.5 = 0.2.
    expected = {"503": 100, "500": 200, "429": 300, "hang": 200, None: 200}
    for kind, mean in expected.items():
        assert abs(counts[kind] - mean) < 50, (kind, counts)


def test_draws_are_reproducible_and_zero_rates_never_fail() -> None:
    settings = FaultSettings(fail_503_rate=0.5)
    rng_a, rng_b = random.Random(3), random.Random(3)
    assert [decide_fault(settings, rng_a) for _ in range(50)] == [
        decide_fault(settings, rng_b) for _ in range(50)
    ]
    assert _draws(FaultSettings(), seed=1) == Counter({None: 1000})
    assert _draws(FaultSettings(fail_503_rate=1.0), seed=1) == Counter({"503": 1000})


def test_always_fail_and_daily_quota_beat_the_rates() -> None:
    assert _draws(FaultSettings(always_fail=500, fail_503_rate=1), 1, 20) == Counter({"500": 20})
    daily = FaultSettings(daily_quota_exhausted=True, hang_rate=1)
    assert _draws(daily, 1, 20) == Counter({"daily_quota": 20})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fail_503_rate": 1.5}, "fail_503_rate must be a number from 0 to 1, got 1.5"),
        ({"fail_500_rate": True}, "fail_500_rate must be a number from 0 to 1, got True"),
        ({"hang_rate": "0.1"}, "hang_rate must be a number from 0 to 1"),
        ({"fail_503_rate": 0.6, "fail_429_rate": 0.6}, "must be at most 1, got 1.2"),
        ({"retry_delay_s": -1}, "retry_delay_s must be a number of seconds >= 0"),
        ({"hang_s": float("inf")}, "hang_s must be a number of seconds >= 0"),
        ({"daily_quota_exhausted": 1}, "daily_quota_exhausted must be true or false"),
        ({"always_fail": 418}, "always_fail must be null or one of 400, 403, 404, 429, 500"),
        ({"always_fail": 503.0}, "always_fail must be null or one of"),
        ({"fault_seed": "x"}, "fault_seed must be null or an integer"),
        ({"rpm": 0}, r"rpm must be null \(unlimited\) or an integer > 0, got 0"),
        ({"tpm": 2.5}, "tpm must be null"),
        ({"quota_window_s": 0}, "quota_window_s must be a number of seconds > 0"),
        ({"nope": 1, "fail": 2}, "unknown fault setting\\(s\\): fail, nope; known: fail_503_rate"),
    ],
)
def test_bad_settings_are_refused_with_a_readable_message(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        FaultSettings().updated(changes)


def test_config_fields_mirror_the_settings_and_are_validated() -> None:
    config = EmulatorConfig(fail_429_rate=0.25, rpm=3, quota_window_s=1.0, always_fail=503)
    settings = config.fault_settings()
    assert (settings.fail_429_rate, settings.rpm, settings.quota_window_s) == (0.25, 3, 1.0)
    assert settings.always_fail == 503
    assert all(hasattr(config, name) for name in fault_field_names())
    with pytest.raises(ValueError, match="hang_rate must be"):
        EmulatorConfig(hang_rate=-0.1)


def test_fault_flags() -> None:
    argv = [
        "--fail-503-rate=0.1",
        "--fail-500-rate=0.2",
        "--fail-429-rate=0.3",
        "--retry-delay-s=0.5",
        "--daily-quota-exhausted",
        "--hang-rate=0.4",
        "--hang-s=2",
        "--always-fail=503",
        "--fault-seed=9",
        "--rpm=3",
        "--tpm=1000",
        "--quota-window-s=1",
    ]
    config, _ = build_config(argv)
    assert config.fault_settings() == FaultSettings(
        fail_503_rate=0.1,
        fail_500_rate=0.2,
        fail_429_rate=0.3,
        retry_delay_s=0.5,
        daily_quota_exhausted=True,
        hang_rate=0.4,
        hang_s=2.0,
        always_fail=503,
        fault_seed=9,
        rpm=3,
        tpm=1000,
        quota_window_s=1.0,
    )
    assert build_config([])[0].fault_settings() == FaultSettings()
    args = parse_args([])
    assert (args.retry_delay_s, args.hang_s, args.quota_window_s) == (1.0, 600.0, 60.0)
    with pytest.raises(SystemExit) as exited:
        build_config(["--fail-503-rate", "2"])
    assert exited.value.code == 2


def test_runtime_changes_and_reset_restore_start_up() -> None:
    state = EmulatorState(config=EmulatorConfig(fault_seed=4, rpm=5))
    state.set_faults({"rpm": None, "fail_503_rate": 1, "fault_seed": 8})
    assert (state.faults.rpm, state.faults.fail_503_rate, state.faults.fault_seed) == (None, 1, 8)
    assert decide_fault(state.faults, state.fault_rng) == "503"
    state.counters.answered_ok = 3
    state.reset()
    assert state.faults == FaultSettings(fault_seed=4, rpm=5)
    assert state.counters.answered_ok == 0
    # The draws restart from the start-up seed.
    assert state.fault_rng.random() == random.Random(4).random()


def test_duration_format() -> None:
    assert [quota_errors.format_duration(s) for s in (2, 0.5, 1.25, 0.0004, 26.4544, 0)] == [
        "2s",
        "0.5s",
        "1.25s",
        "0s",
        "26.454s",
        "0s",
    ]


def test_quota_body_has_quota_failure_help_and_retry_info() -> None:
    limit = quota_errors.QuotaLimit("metric/x", "GenerateRequestsPerMinutePerProjectPerModel", 3)
    body = quota_errors.quota_exceeded("gemini-2.5-flash", [limit], 0.5).body()["error"]
    assert (body["code"], body["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert body["message"].endswith("model: gemini-2.5-flash\nPlease retry in 0.5s.")
    failure, help_, retry = body["details"]
    assert failure["@type"] == "type.googleapis.com/google.rpc.QuotaFailure"
    assert failure["violations"] == [
        {
            "quotaMetric": "metric/x",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
            "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
            "quotaValue": "3",
        }
    ]
    assert help_["@type"] == "type.googleapis.com/google.rpc.Help"
    assert retry == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.5s"}


def test_rpm_window_refuses_then_frees() -> None:
    tracker = QuotaTracker()
    limits: dict[str, Any] = {"rpm": 3, "tpm": None, "window": 1.0}
    for now in (10.0, 10.2, 10.4):
        assert tracker.try_admit("m", 5, now, **limits) is None
    refused = tracker.try_admit("m", 5, 10.5, **limits)
    assert refused is not None
    assert refused.violations == (QuotaViolation("rpm", 3),)
    assert refused.retry_after_s == pytest.approx(0.5)  # the 10.0 admission leaves at 11.0
    assert tracker.try_admit("m", 5, 11.0, **limits) is None  # (10.0, 11.0] no longer holds it
    assert tracker.try_admit("other", 5, 11.0, **limits) is None  # per model
    stats = tracker.stats(11.0, 1.0)
    assert (stats["max_requests_in_window"], stats["max_tokens_in_window"]) == (3, 15)
    assert stats["window_by_model"]["m"]["requests_in_window"] == 3
    assert stats["window_by_model"]["other"]["max_requests_in_window"] == 1


def test_tpm_window_and_oversized_requests() -> None:
    tracker = QuotaTracker()
    limits: dict[str, Any] = {"rpm": None, "tpm": 100, "window": 60.0}
    assert tracker.try_admit("m", 40, 0.0, **limits) is None
    assert tracker.try_admit("m", 40, 10.0, **limits) is None
    refused = tracker.try_admit("m", 30, 20.0, **limits)
    assert refused is not None
    assert refused.violations == (QuotaViolation("tpm", 100),)
    assert refused.retry_after_s == pytest.approx(40.0)  # once the first 40 tokens leave
    assert tracker.try_admit("m", 20, 20.0, **limits) is None  # 100 exactly fits
    huge = tracker.try_admit("m", 101, 100.0, **limits)
    assert huge is not None
    assert huge.retry_after_s == pytest.approx(60.0)
    assert tracker.try_admit("m", 10, 100.0, **limits) is None
    both = tracker.try_admit("m", 95, 101.0, rpm=1, tpm=100, window=60.0)
    assert both is not None
    assert both.violations == (QuotaViolation("rpm", 1), QuotaViolation("tpm", 100))
    assert both.retry_after_s == pytest.approx(59.0)


def test_busiest_window_is_exact() -> None:
    tracker = QuotaTracker()
    # 1 s window: at most 3 of these fall in any (t - 1, t].
    for now in (0.0, 0.5, 0.9, 1.0, 1.6, 1.95, 5.0):
        tracker.try_admit("m", 10, now, rpm=None, tpm=None, window=1.0)
    stats = tracker.stats(5.0, 1.0)
    assert (stats["max_requests_in_window"], stats["max_tokens_in_window"]) == (3, 30)
    assert stats["window_by_model"]["m"]["requests_in_window"] == 1


def test_lowered_rpm_waits_for_enough_admissions_to_leave() -> None:
    tracker = QuotaTracker()
    for now in (0.0, 0.1, 0.2, 0.3):
        tracker.try_admit("m", 1, now, rpm=None, tpm=None, window=1.0)
    refused = tracker.try_admit("m", 1, 0.4, rpm=2, tpm=None, window=1.0)
    assert refused is not None
    assert refused.retry_after_s == pytest.approx(0.8)  # 3 must leave: the 0.2 one at 1.2


def test_daily_reset_is_within_a_day() -> None:
    # 2026-01-15 12:00 UTC is 04:00 Pacific standard time: 20 h to midnight.
    assert seconds_until_pacific_midnight(1768478400.0) == pytest.approx(20 * 3600)
    assert 0 < seconds_until_pacific_midnight(1783000000.5) <= 25 * 3600


def test_visionq_emulator_takes_the_same_flags() -> None:
    import typer.main

    from visionq.cli.main import app

    group = typer.main.get_command(app)
    context = group.make_context("visionq", ["emulator"])
    command = group.get_command(context, "emulator")  # type: ignore[attr-defined]
    assert command is not None
    flags = [
        *("--fail-503-rate", "0.1", "--fail-500-rate", "0.2", "--fail-429-rate", "0.3"),
        *("--retry-delay-s", "0.5", "--daily-quota-exhausted", "--hang-rate", "0.4"),
        *("--hang-s", "2", "--always-fail", "503", "--fault-seed", "9", "--rpm", "3"),
        *("--tpm", "1000", "--quota-window-s", "1"),
    ]
    params = command.make_context("emulator", list(flags)).params
    from_typer = FaultSettings(**{name: params[name] for name in fault_field_names()})
    assert from_typer == build_config(flags)[0].fault_settings()
    assert from_typer.quota_window_s == 1.0
    defaults = command.make_context("emulator", []).params
    assert (
        FaultSettings(**{name: defaults[name] for name in fault_field_names()}) == FaultSettings()
    )
