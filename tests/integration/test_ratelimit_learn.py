"""The limiter learns Gemini's real quota from 429s (worker/quota_learn.py), shares it
through Redis, recovers after quiet windows, settles admissions to the call's actual
amounts and asks again when an admission aged before its send (worker/gemini_call.py).
Real Redis, real time with short windows; 429 bodies built by the emulator's own code and
read through the SDK's APIError, as the worker reads them."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import redis
from google.genai import errors as genai_errors

from tests.integration.limiter_fixtures import client, prefix, redis_url
from visionq.emulator import quota_errors
from visionq.emulator.errors import EmulatorError
from visionq.emulator.faults import FaultSettings
from visionq.emulator.gate import quota_limit
from visionq.worker.gemini import _from_api_error
from visionq.worker.gemini_call import _admitted
from visionq.worker.quota_learn import LearnPolicy, learnable, quota_violation
from visionq.worker.ratelimit import GeminiRateLimiter, ModelQuota

__all__ = ["client", "prefix", "redis_url"]  # fixtures used by this module

MODEL = "gemini-3.6-flash"
FAR = 1e12  # a deadline never reached


def _limiter(
    client: redis.Redis, prefix: str, quota: ModelQuota, *, window_s: float = 1.0, **kwargs: object
) -> GeminiRateLimiter:
    learn = kwargs.pop("learn", LearnPolicy())
    margin = kwargs.pop("margin_s", 0.0)
    return GeminiRateLimiter(
        client, {MODEL: quota}, window_s=window_s, margin_s=margin, prefix=prefix,  # type: ignore[arg-type]
        learn=learn, smooth_ms=0,  # type: ignore[arg-type]  # smoothing: test_ratelimit_smooth.py
    )  # fmt: skip


def _admitted_now(limiter: GeminiRateLimiter, tokens: int = 1) -> int:
    """How many calls the limiter admits right now, one after another."""
    count = 0
    while limiter.try_acquire(MODEL, tokens) == 0.0:
        count += 1
        assert count < 10_000
    return count


def _translated(error: EmulatorError) -> Exception:
    """The GeminiCallError the worker raises for the emulator's 429 (cause: the APIError)."""
    api = genai_errors.APIError(429, error.body())
    try:
        raise _from_api_error(api) from api
    except Exception as exc:
        return exc


def test_quota_value_sets_the_limit_used(client: redis.Redis, prefix: str) -> None:
    limiter = _limiter(client, prefix, ModelQuota(rpm=20, tpm=None))
    limiter.learn_429(MODEL, quota_metric="rpm", quota_value=10)
    assert limiter.effective_limits(MODEL) == {"rpm": 9}  # floor(20 * 0.98 * 10 / 20)
    assert _admitted_now(limiter) == 9
    # A higher value later never raises it (only quiet windows do).
    limiter.learn_429(MODEL, quota_metric="rpm", quota_value=18)
    assert limiter.factors(MODEL)["rpm"] == pytest.approx(0.49)


def test_a_quota_value_at_least_the_configured_one_lowers_nothing(
    client: redis.Redis, prefix: str
) -> None:
    # Such a 429 comes from calls reaching Gemini later than admitted, not from a smaller
    # quota: lowering to 0.98 would waste 2% of the quota for windows.
    limiter = _limiter(client, prefix, ModelQuota(rpm=20, tpm=None))
    limiter.learn_429(MODEL, quota_metric="rpm", quota_value=20)
    limiter.learn_429(MODEL, quota_metric="rpm", quota_value=25)
    assert limiter.factors(MODEL)["rpm"] == 1.0
    assert limiter.effective_limits(MODEL) == {"rpm": 20}


def test_without_value_decreases_once_per_window(client: redis.Redis, prefix: str) -> None:
    limiter = _limiter(client, prefix, ModelQuota(rpm=100, tpm=1000))
    now = int(time.time() * 1000)
    limiter.learn_429(MODEL, quota_metric=None, quota_value=None, now_ms=now)
    limiter.learn_429(MODEL, quota_metric=None, quota_value=None, now_ms=now + 500)
    assert limiter.effective_limits(MODEL) == {"rpm": 70, "tpm": 700}
    limiter.learn_429(MODEL, quota_metric=None, quota_value=None, now_ms=now + 1100)
    assert limiter.effective_limits(MODEL) == {"rpm": 49, "tpm": 490}
    # A named kind without value cuts that kind only.
    limiter.learn_429(MODEL, quota_metric="tpm", quota_value=None, now_ms=now + 2200)
    assert limiter.effective_limits(MODEL) == {"rpm": 49, "tpm": 343}


def test_factor_recovers_after_quiet_windows(client: redis.Redis, prefix: str) -> None:
    # Every call is given its time (no sleeps: a stalled CI cannot move a window).
    policy = LearnPolicy(increase=0.25, quiet_windows=2)
    limiter = _limiter(client, prefix, ModelQuota(rpm=100, tpm=None), window_s=2.0, learn=policy)
    t0 = int(time.time() * 1000)
    limiter.learn_429(MODEL, quota_metric="rpm", quota_value=51, now_ms=t0)  # factor 0.4998
    limiter.try_acquire(MODEL, 1, now_ms=t0 + 1)
    assert limiter.effective_limits(MODEL) == {"rpm": 49}  # not quiet yet
    limiter.try_acquire(MODEL, 1, now_ms=t0 + 4500)  # more than 2 quiet windows
    assert limiter.effective_limits(MODEL) == {"rpm": 74}
    limiter.try_acquire(MODEL, 1, now_ms=t0 + 4600)
    assert limiter.effective_limits(MODEL) == {"rpm": 74}  # one rise per window
    for k in range(1, 4):
        limiter.try_acquire(MODEL, 1, now_ms=t0 + 4500 + k * 2100)
    assert limiter.effective_limits(MODEL) == {"rpm": 100}  # capped at the configured


def test_a_429_restarts_the_quiet_period(client: redis.Redis, prefix: str) -> None:
    limiter = _limiter(client, prefix, ModelQuota(rpm=100, tpm=None), window_s=2.0,
                       learn=LearnPolicy(increase=0.25))  # fmt: skip
    t0 = int(time.time() * 1000)
    limiter.learn_429(MODEL, quota_metric="rpm", quota_value=51, now_ms=t0)
    limiter.learn_429(MODEL, quota_metric="rpm", quota_value=51, now_ms=t0 + 3000)
    # Two windows after the first 429 (it would rise) but one after the second.
    limiter.try_acquire(MODEL, 1, now_ms=t0 + 5000)
    assert limiter.effective_limits(MODEL) == {"rpm": 49}
    limiter.try_acquire(MODEL, 1, now_ms=t0 + 7100)
    assert limiter.effective_limits(MODEL) == {"rpm": 74}


def test_two_limiters_share_what_one_learned(client: redis.Redis, prefix: str) -> None:
    one = _limiter(client, prefix, ModelQuota(rpm=10, tpm=None), window_s=5.0)
    other = _limiter(client, prefix, ModelQuota(rpm=10, tpm=None), window_s=5.0)
    one.learn_429(MODEL, quota_metric="rpm", quota_value=5)
    assert other.effective_limits(MODEL) == {"rpm": 4}
    assert _admitted_now(other) == 4
    assert one.try_acquire(MODEL, 1) > 0


def test_not_learning_ignores_429s(client: redis.Redis, prefix: str) -> None:
    limiter = _limiter(client, prefix, ModelQuota(rpm=5, tpm=None), learn=None)
    limiter.learn_429(MODEL, quota_metric="rpm", quota_value=1)
    assert client.exists(limiter.scale_key(MODEL)) == 0
    assert _admitted_now(limiter) == 5


def test_settle_replaces_the_reservation_keeping_its_time(client: redis.Redis, prefix: str) -> None:
    quotas = {MODEL: ModelQuota(rpm=None, tpm=1000, usd=Decimal(1))}
    limiter = GeminiRateLimiter(client, quotas, window_s=5.0, margin_s=0.0, prefix=prefix,
                                learn=LearnPolicy(), smooth_ms=0)  # fmt: skip
    admission = limiter.acquire(MODEL, 900, usd=Decimal("0.9"), deadline=FAR)
    log, tokens = limiter.keys(MODEL)
    scored: list[tuple[bytes, float]] = list(client.zrange(log, 0, -1, withscores=True))  # type: ignore[arg-type]
    assert limiter.try_acquire(MODEL, 200) > 0
    limiter.settle(admission, tokens=300, usd=Decimal("0.25"))
    assert int(client.get(tokens) or 0) == 300
    assert int(client.get(limiter.usd_keys(MODEL)[1]) or 0) == 250_000_000
    settled: list[tuple[bytes, float]] = list(client.zrange(log, 0, -1, withscores=True))  # type: ignore[arg-type]
    assert [score for _, score in settled] == [score for _, score in scored]
    assert settled[0][0].startswith(b"300:")
    assert limiter.try_acquire(MODEL, 700, usd=Decimal("0.75")) == 0.0
    # Unknown actual amounts keep the reservation; release takes the settled members back.
    limiter.settle(admission, tokens=None, usd=None)
    limiter.release(admission)
    assert int(client.get(tokens) or 0) == 700


def test_an_admission_held_up_before_the_send_is_restamped_keeping_its_slot(
    client: redis.Redis, prefix: str
) -> None:
    limiter = _limiter(client, prefix, ModelQuota(rpm=1, tpm=None), window_s=5.0, margin_s=0.2)
    log = limiter.keys(MODEL)[0]
    paced: list[float] = []

    def pace() -> None:
        limiter.acquire(MODEL, 1, deadline=FAR)
        paced.append(float(client.zrange(log, 0, 0, withscores=True)[0][1]))
        time.sleep(0.15)  # the thread held up for more than a tenth of the margin

    admission = _admitted(limiter, pace)
    assert admission is not None and admission.age() < 0.1
    assert len(paced) == 1  # not taken back and asked again
    scored: list[tuple[bytes, float]] = list(client.zrange(log, 0, -1, withscores=True))  # type: ignore[arg-type]
    assert len(scored) == 1 and scored[0][1] >= paced[0] + 100  # stamped when sent
    assert limiter.try_acquire(MODEL, 1) > 0  # the slot stayed taken: nobody else got in


def test_an_admission_that_left_its_window_is_asked_again(client: redis.Redis, prefix: str) -> None:
    limiter = _limiter(client, prefix, ModelQuota(rpm=1, tpm=None), window_s=0.1, margin_s=0.1)
    paced: list[int] = []

    def pace() -> None:
        limiter.acquire(MODEL, 1, deadline=FAR)
        paced.append(1)
        if len(paced) == 1:
            time.sleep(0.35)  # past its whole window: restamping it would admit it unchecked

    admission = _admitted(limiter, pace)
    assert admission is not None and len(paced) == 2
    assert client.zcard(limiter.keys(MODEL)[0]) == 1


def _refusal(kind: str, value: int, *, free: bool = False) -> EmulatorError:
    settings = FaultSettings(quota_tier="free" if free else "paid")
    return quota_errors.quota_exceeded(MODEL, [quota_limit(kind, settings, value)], 1.0)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(_refusal("rpm", 12), ("rpm", 12), id="rpm"),
        pytest.param(_refusal("tpm", 34500, free=True), ("tpm", 34500), id="tpm-free-tier"),
        pytest.param(quota_errors.quota_help_only(), (None, None), id="help-only"),
        pytest.param(
            quota_errors.spend_limit_exceeded(MODEL, 1, 5.0), ("usd", 10), id="spend-limit"
        ),
    ],
)
def test_quota_violation_reads_the_sdk_error(
    error: EmulatorError, expected: tuple[str | None, int | None]
) -> None:
    translated = _translated(error)
    assert learnable(translated)
    assert quota_violation(translated) == expected
    assert quota_violation(genai_errors.APIError(429, error.body())) == expected


def test_per_day_429_is_not_learned() -> None:
    settings = FaultSettings()
    error = quota_errors.quota_exceeded(MODEL, [quota_limit("rpd", settings, 100)], 3600.0)
    translated = _translated(error)
    assert not learnable(translated)
    assert quota_violation(translated) == (None, None)


def test_the_learned_factor_is_visible(
    client: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Trial finding 5: the gauge and a WARNING when a 429 lowers the limit, INFO when the
    factor (raised in Redis, by any worker) is seen back up at a later admission."""
    from prometheus_client import REGISTRY

    from visionq.models.metrics import model_label

    def gauge() -> float | None:
        labels = {"model": model_label(MODEL), "kind": "rpm"}
        return REGISTRY.get_sample_value("visionq_ratelimit_learned_factor", labels)

    limiter = _limiter(client, prefix, ModelQuota(rpm=20, tpm=None), window_s=5.0)
    with caplog.at_level("INFO", logger="visionq.worker.quota_learn"):
        limiter.learn_429(MODEL, quota_metric="rpm", quota_value=10)
        assert gauge() == pytest.approx(0.49)
        lowered = [r for r in caplog.records if r.levelname == "WARNING"]
        assert lowered and "lowered the rpm limit" in lowered[0].getMessage()
        client.hset(limiter.scale_key(MODEL), "rpm", "1")  # risen, as after quiet windows
        limiter.acquire(MODEL, 1, deadline=FAR, clock=lambda: FAR / 2)
        assert gauge() == 1.0
        rose = [r for r in caplog.records if r.levelname == "INFO"]
        assert rose and "rose back to 1.00" in rose[0].getMessage()
