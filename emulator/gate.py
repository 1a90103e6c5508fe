"""The fault and quota stages in front of generateContent (and streamGenerateContent).

Order inside a call: API key, model and JSON body checks (app.py), then ``fault_stage``
(injected errors or a hang), then the request is parsed and billed, then ``admit`` applies
the per-model rpm/tpm windows on arrival, before the images are analysed (service.py).
countTokens and the File API never pass through here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone, tzinfo
from datetime import time as day_start
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from visionq.emulator import errors, quota_errors
from visionq.emulator.errors import EmulatorError
from visionq.emulator.faults import DAILY_QUOTA, HANG, FaultSettings, decide_fault
from visionq.emulator.quota import RPM, TPM
from visionq.emulator.quota_errors import QuotaLimit
from visionq.emulator.state import EmulatorState

Disconnected = Callable[[], Awaitable[bool]]

# Quota ids exactly as the Gemini API names them in QuotaFailure: the paid tier's have no
# suffix, the free tier's end "-FreeTier" (quota_tier setting).
RPM_QUOTA_ID = "GenerateRequestsPerMinutePerProjectPerModel"
TPM_QUOTA_ID = "GenerateContentInputTokensPerModelPerMinute"
RPD_QUOTA_ID = "GenerateRequestsPerDayPerProjectPerModel"
FREE_TIER_SUFFIX = "-FreeTier"
METRIC_PREFIX = "generativelanguage.googleapis.com/generate_content_"
# The free tier's per-minute token quota as the field reports show it.
NOMINAL_FREE_TPM = 250_000
# Quota sizes a random or daily 429 claims when no rpm is configured (tier-1-like figures).
NOMINAL_RPM = 1000
NOMINAL_RPD = 10_000
RPD_KIND = "rpd"
# How often a hung call checks whether its client gave up.
HANG_POLL_S = 0.1


def _pacific() -> tzinfo:
    try:
        return ZoneInfo("America/Los_Angeles")
    except ZoneInfoNotFoundError:
        # No tz database: standard time is close enough for a retry hint.
        return timezone(timedelta(hours=-8))


def seconds_until_pacific_midnight(now: float) -> float:
    """Seconds from the epoch time ``now`` to the next midnight Pacific (when RPD resets)."""
    zone = _pacific()
    today = datetime.fromtimestamp(now, zone).date()
    midnight = datetime.combine(today + timedelta(days=1), day_start(), tzinfo=zone)
    # Through timestamps, so a DST change tonight is counted right.
    return midnight.timestamp() - now


def quota_limit(kind: str, settings: FaultSettings, value: int) -> QuotaLimit:
    """The QuotaFailure entry of quota ``kind`` (rpm, tpm or rpd) in the settings' tier."""
    free = settings.quota_tier == "free"
    metric = METRIC_PREFIX + ("free_tier_" if free else "paid_tier_")
    metric += "input_token_count" if kind == TPM else "requests"
    base = {RPM: RPM_QUOTA_ID, TPM: TPM_QUOTA_ID}.get(kind, RPD_QUOTA_ID)
    return QuotaLimit(metric, base + (FREE_TIER_SUFFIX if free else ""), value)


def injected_429(settings: FaultSettings, model: str) -> EmulatorError:
    """The 429 of ``fail_429_rate`` / ``always_fail`` 429, in the ``quota_shape`` chosen."""
    if settings.quota_shape == "help_only":
        return quota_errors.quota_help_only()
    if settings.quota_shape == "spend_limit":
        return quota_errors.spend_limit_exceeded(model, settings.spend_tier, settings.retry_delay_s)
    limits = [quota_limit(RPM, settings, settings.rpm or NOMINAL_RPM)]
    if settings.quota_shape == "mixed_daily":
        # As the free tier sends it: per-minute and per-day ids at once, a short RetryInfo.
        limits.append(quota_limit(TPM, settings, settings.tpm or NOMINAL_FREE_TPM))
        limits.append(quota_limit(RPD_KIND, settings, NOMINAL_RPD))
    return quota_errors.quota_exceeded(model, limits, settings.retry_delay_s)


def _fault_error(kind: str, settings: FaultSettings, model: str, now: float) -> EmulatorError:
    if kind == DAILY_QUOTA:
        limit = quota_limit(RPD_KIND, settings, NOMINAL_RPD)
        return quota_errors.quota_exceeded(model, [limit], seconds_until_pacific_midnight(now))
    if kind == "429":
        return injected_429(settings, model)
    return errors.failure(int(kind))


async def _hang(seconds: float, disconnected: Disconnected) -> bool:
    """Wait ``seconds``; False as soon as the client is gone (its timeout fired)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        # asyncio.sleep keeps the server answering other calls meanwhile.
        await asyncio.sleep(min(left, HANG_POLL_S))
        if await disconnected():
            return False
    return True


async def fault_stage(state: EmulatorState, model: str, disconnected: Disconnected) -> None:
    """Count the call, then inject the fault it draws: raise its error, or hang.

    A hung call whose client disconnects stops there (``hangs_abandoned``) rather than
    holding the server for the rest of ``hang_s``.
    """
    state.counters.generate_calls += 1
    settings = state.faults
    kind = decide_fault(settings, state.fault_rng)
    if kind is None:
        return
    state.counters.faults[kind] = state.counters.faults.get(kind, 0) + 1
    if kind != HANG:
        raise _fault_error(kind, settings, model, state.clock())
    if not await _hang(settings.hang_s, disconnected):
        state.counters.hangs_abandoned += 1
        raise errors.client_closed()


def admit(state: EmulatorState, model: str, prompt_tokens: int) -> None:
    """Admit the call into ``model``'s rpm/tpm window or raise the quota 429.

    Refused calls leave the window untouched. Every call is recorded, limits or not, so
    the stats show the busiest window a client produced.
    """
    settings = state.faults
    rejection = state.quota.try_admit(
        model,
        prompt_tokens,
        state.monotonic(),
        rpm=settings.rpm,
        tpm=settings.tpm,
        window=settings.quota_window_s,
    )
    if rejection is None:
        return
    state.counters.quota_rejections += 1
    by_limit = state.counters.quota_rejections_by_limit
    for violation in rejection.violations:
        by_limit[violation.limit] = by_limit.get(violation.limit, 0) + 1
    limits = [quota_limit(v.limit, settings, v.quota_value) for v in rejection.violations]
    raise quota_errors.quota_exceeded(model, limits, rejection.retry_after_s)
