"""worker.webhook_schedule.next_time: the default timeline, jitter bounds, Retry-After and
the window's end (one last try at the edge, then failed)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from visionq.models.ops_settings import OpsSettings
from visionq.worker.webhook_schedule import next_time

T0 = datetime(2026, 12, 5, 10, 0, 0)
DEFAULT_DELAYS = [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0]
DAY = 86400.0


def _middle(low: float, high: float) -> float:
    return (low + high) / 2  # jitter factor 1.0


def _timeline(delays: list[float], window_s: float) -> list[timedelta]:
    """Offsets from the first attempt of every attempt made when each one fails."""
    at, times = T0, [timedelta(0)]
    for n in range(1, 100):
        later = next_time(
            attempts=n, window_started_at=T0, now=at, delays_s=delays, window_s=window_s,
            retry_after_s=None, uniform=_middle,
        )  # fmt: skip
        if later is None:
            return times
        assert later > at
        at = later
        times.append(at - T0)
    raise AssertionError("the schedule never ends")


def test_the_default_timeline_ends_at_24_hours() -> None:
    def hms(h: int = 0, m: int = 0, s: int = 0) -> timedelta:
        return timedelta(hours=h, minutes=m, seconds=s)

    assert _timeline(DEFAULT_DELAYS, DAY) == [
        hms(),
        hms(s=5),
        hms(m=5, s=5),
        hms(m=35, s=5),
        hms(2, 35, 5),
        hms(7, 35, 5),
        hms(17, 35, 5),
        hms(24),  # moved to the window's end once
    ]


def test_the_settings_default_is_that_schedule() -> None:
    defaults = OpsSettings.model_fields
    assert defaults["webhook_retry_delays_s"].get_default(call_default_factory=True) == (
        DEFAULT_DELAYS
    )
    assert defaults["webhook_retry_window_s"].default == DAY


def test_the_last_delay_repeats() -> None:
    offsets = _timeline([1.0, 2.0], 9.0)
    assert [o.total_seconds() for o in offsets] == [0, 1, 3, 5, 7, 9]


@pytest.mark.parametrize("factor", [0.8, 1.2])
def test_jitter_stays_within_twenty_percent(factor: float) -> None:
    seen: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        seen.append((low, high))
        return factor * 1.0 if (low, high) == (0.8, 1.2) else low

    later = next_time(
        attempts=3, window_started_at=T0, now=T0, delays_s=DEFAULT_DELAYS, window_s=DAY,
        retry_after_s=None, uniform=uniform,
    )  # fmt: skip
    assert seen == [(0.8, 1.2)]
    assert later == T0 + timedelta(seconds=1800 * factor)


def test_a_longer_retry_after_is_honoured_and_a_shorter_one_ignored() -> None:
    def at(retry_after: float) -> datetime | None:
        return next_time(
            attempts=1, window_started_at=T0, now=T0, delays_s=DEFAULT_DELAYS, window_s=DAY,
            retry_after_s=retry_after, uniform=_middle,
        )  # fmt: skip

    assert at(120) == T0 + timedelta(seconds=120)
    assert at(1) == T0 + timedelta(seconds=5)
    assert at(10 * DAY) == T0 + timedelta(seconds=DAY)  # capped at the window's end


def test_a_failure_at_the_window_end_is_final() -> None:
    end = T0 + timedelta(seconds=120)

    def after(attempts: int, now: datetime) -> datetime | None:
        return next_time(
            attempts=attempts, window_started_at=T0, now=now, delays_s=[0.2, 0.5, 1.0],
            window_s=120.0, retry_after_s=None, uniform=_middle,
        )  # fmt: skip

    assert after(9, end - timedelta(seconds=0.5)) == end
    assert after(10, end) is None
    assert after(10, end + timedelta(seconds=3)) is None


def test_an_empty_schedule_is_an_error() -> None:
    with pytest.raises(ValueError):
        next_time(
            attempts=1, window_started_at=T0, now=T0, delays_s=[], window_s=DAY,
            retry_after_s=None,
        )  # fmt: skip
