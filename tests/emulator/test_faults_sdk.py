"""Injected faults and quotas seen through the real google-genai SDK.

Every test starts with ``set_faults``, which resets the shared emulator (start-up faults,
zero counters, empty quota windows) before applying its own settings.
"""

from __future__ import annotations

import contextlib
import importlib
import random
import time
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from tests.emulator.conftest import API_KEY, MODEL, make_client
from tests.emulator.helpers import image_part, reset, set_faults, stats
from visionq.emulator.faults import FaultSettings, decide_fault
from visionq.emulator.shapes import encode

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
# 40 characters: 10 prompt tokens at the built-in 4 characters per token.
PROMPT = "describe nothing at all, just say hello."


@pytest.fixture(scope="module")
def sdk(faults_url: str) -> genai.Client:
    """A client without retries, so every fault reaches the test."""
    return make_client(faults_url)


def _generate(client: genai.Client, prompt: str = PROMPT) -> types.GenerateContentResponse:
    return client.models.generate_content(model=MODEL, contents=prompt)


def _detail(error: errors.APIError, kind: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        d for d in error.details["error"]["details"] if d["@type"] == kind
    ]
    assert len(found) == 1, error.details
    return found[0]


def _retry_delay_s(error: errors.APIError) -> float:
    delay: str = _detail(error, RETRY_INFO)["retryDelay"]
    assert delay.endswith("s")
    return float(delay.removesuffix("s"))


def _quota_id(error: errors.APIError) -> str:
    violations = _detail(error, QUOTA_FAILURE)["violations"]
    assert violations[0]["quotaDimensions"] == {"location": "global", "model": MODEL}
    quota_id: str = violations[0]["quotaId"]
    return quota_id


def _timeout_errors() -> tuple[type[BaseException], ...]:
    # The SDK sends through httpx2 (a fork under its own namespace) when it is installed.
    found: list[type[BaseException]] = [httpx.TimeoutException]
    with contextlib.suppress(ImportError):
        found.append(importlib.import_module("httpx2").TimeoutException)
    return tuple(found)


def _client_error(client: genai.Client, prompt: str = PROMPT) -> errors.ClientError:
    with pytest.raises(errors.ClientError) as info:
        _generate(client, prompt)
    return info.value


def test_random_429_is_parsed_by_the_sdk(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, fail_429_rate=1.0, retry_delay_s=0.5)
    error = _client_error(sdk)
    assert (error.code, error.status) == (429, "RESOURCE_EXHAUSTED")
    assert error.message is not None
    assert error.message.startswith("You exceeded your current quota")
    assert _detail(error, RETRY_INFO)["retryDelay"] == "0.5s"
    assert _quota_id(error) == "GenerateRequestsPerMinutePerProjectPerModel"
    counters = stats(faults_url)
    assert counters["faults"]["429"] == 1
    assert (counters["generate_calls"], counters["answered_ok"]) == (1, 0)


def test_start_up_retry_delay_comes_back_after_reset(faults_url: str, sdk: genai.Client) -> None:
    settings = set_faults(faults_url, fail_429_rate=1.0)
    # conftest starts this emulator with --retry-delay-s 2.5 --fault-seed 11 --hang-s 30.
    assert (settings["retry_delay_s"], settings["fault_seed"], settings["hang_s"]) == (2.5, 11, 30)
    assert _detail(_client_error(sdk), RETRY_INFO)["retryDelay"] == "2.5s"
    reset(faults_url)
    assert httpx.get(f"{faults_url}/_emulator/faults").json()["fail_429_rate"] == 0
    assert _generate(sdk).text


@pytest.mark.parametrize(
    ("field", "code", "status"),
    [("fail_503_rate", 503, "UNAVAILABLE"), ("fail_500_rate", 500, "INTERNAL")],
)
def test_server_errors(
    faults_url: str, sdk: genai.Client, field: str, code: int, status: str
) -> None:
    set_faults(faults_url, **{field: 1.0})
    with pytest.raises(errors.ServerError) as info:
        _generate(sdk)
    assert (info.value.code, info.value.status) == (code, status)
    assert stats(faults_url)["faults"][str(code)] == 1


def test_seeded_draws_over_http_follow_the_decision_function(faults_url: str) -> None:
    set_faults(faults_url, fail_503_rate=0.3, fail_500_rate=0.2, fault_seed=3)
    url = f"{faults_url}/v1beta/models/{MODEL}:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    with httpx.Client(headers={"x-goog-api-key": API_KEY}) as http:
        got = [http.post(url, json=body).status_code for _ in range(20)]
    rng = random.Random(3)
    settings = FaultSettings(fail_503_rate=0.3, fail_500_rate=0.2)
    expected = [int(decide_fault(settings, rng) or 200) for _ in range(20)]
    assert got == expected
    assert {503, 500, 200} <= set(got)


def test_daily_quota(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, daily_quota_exhausted=True)
    error = _client_error(sdk)
    assert error.code == 429
    assert _quota_id(error) == "GenerateRequestsPerDayPerProjectPerModel"
    assert 0 < _retry_delay_s(error) <= 25 * 3600
    assert stats(faults_url)["faults"]["daily_quota"] == 1


def test_always_fail_covers_stream_but_not_count_tokens(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, always_fail=503, fail_429_rate=1.0)
    with pytest.raises(errors.ServerError) as info:
        _generate(sdk)
    assert info.value.code == 503
    with pytest.raises(errors.ServerError):
        list(sdk.models.generate_content_stream(model=MODEL, contents=PROMPT))
    assert sdk.models.count_tokens(model=MODEL, contents=PROMPT).total_tokens == 10
    set_faults(faults_url, always_fail=500)
    with pytest.raises(errors.ServerError) as info:
        _generate(sdk)
    assert info.value.code == 500
    counters = stats(faults_url)
    assert (counters["faults"]["500"], counters["generate_calls"]) == (1, 1)


def test_short_hang_answers_normally(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, hang_rate=1.0, hang_s=0.3)
    started = time.monotonic()
    assert _generate(sdk).text
    assert time.monotonic() - started >= 0.3
    counters = stats(faults_url)
    assert (counters["faults"]["hang"], counters["answered_ok"]) == (1, 1)


def test_hang_makes_the_client_time_out(faults_url: str) -> None:
    set_faults(faults_url, hang_rate=1.0, hang_s=5.0)
    impatient = genai.Client(
        api_key=API_KEY,
        http_options=types.HttpOptions(base_url=faults_url, api_version="v1beta", timeout=500),
    )
    started = time.monotonic()
    with pytest.raises(_timeout_errors()):
        _generate(impatient)
    impatient.close()
    # The server stays responsive while the call hangs, and notices the client left.
    deadline = time.monotonic() + 2
    while stats(faults_url)["hangs_abandoned"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert time.monotonic() - started < 3
    counters = stats(faults_url)
    assert (counters["faults"]["hang"], counters["hangs_abandoned"]) == (1, 1)
    assert counters["answered_ok"] == 0


def test_rpm_window(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, rpm=3, quota_window_s=1.0)
    for _ in range(3):
        assert _generate(sdk).text
    error = _client_error(sdk)
    assert error.code == 429
    assert _quota_id(error) == "GenerateRequestsPerMinutePerProjectPerModel"
    assert _detail(error, QUOTA_FAILURE)["violations"][0]["quotaValue"] == "3"
    delay = _retry_delay_s(error)
    assert 0 < delay <= 1.0
    time.sleep(delay + 0.05)
    assert _generate(sdk).text
    counters = stats(faults_url)
    assert counters["quota_rejections"] == 1
    assert counters["quota_rejections_by_limit"] == {"rpm": 1, "tpm": 0}
    assert (counters["generate_calls"], counters["answered_ok"]) == (5, 4)
    assert counters["max_requests_in_window"] == 3
    assert counters["window_by_model"][MODEL]["max_requests_in_window"] == 3


def test_tpm_window(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, tpm=25, quota_window_s=1.0)
    assert _generate(sdk).text
    assert _generate(sdk).text  # 20 of 25 tokens used
    error = _client_error(sdk)
    assert _quota_id(error) == "GenerateContentInputTokensPerModelPerMinute"
    assert _detail(error, QUOTA_FAILURE)["violations"][0]["quotaValue"] == "25"
    assert _generate(sdk, "tiny").text  # 1 token still fits: refused calls cost nothing
    counters = stats(faults_url)
    assert counters["quota_rejections_by_limit"] == {"rpm": 0, "tpm": 1}
    assert (counters["max_tokens_in_window"], counters["max_requests_in_window"]) == (21, 3)


def test_quota_counts_a_call_on_arrival_before_its_image_is_analysed(
    faults_url: str, sdk: genai.Client
) -> None:
    # Gemini checks quota at its front door, before the model runs: a call is stamped into
    # the window when it arrives, not after the (slow, uneven) image analysis. An image
    # whose header reads but whose pixels do not shows it: counted, then refused with 400.
    set_faults(faults_url, rpm=5, quota_window_s=60.0)
    noise = random.Random(7).randbytes(64 * 48 * 3)
    jpeg = encode(Image.frombytes("RGB", (64, 48), noise), "JPEG", quality=90)
    truncated = image_part(jpeg[: len(jpeg) // 2], "image/jpeg")
    with pytest.raises(errors.ClientError) as info:
        sdk.models.generate_content(model=MODEL, contents=[truncated])
    assert info.value.code == 400
    counters = stats(faults_url)
    assert counters["window_by_model"][MODEL]["requests_in_window"] == 1
    assert counters["quota_rejections"] == 0


def test_runtime_faults_endpoint(faults_url: str) -> None:
    reset(faults_url)
    endpoint = f"{faults_url}/_emulator/faults"
    current = httpx.get(endpoint).json()
    assert current["rpm"] is None
    assert current["always_fail"] is None
    changed = httpx.post(endpoint, json={"rpm": 7, "tpm": 1000, "quota_window_s": 2}).json()
    assert (changed["rpm"], changed["tpm"], changed["quota_window_s"]) == (7, 1000, 2)
    assert httpx.get(endpoint).json() == changed
    for body, words in (
        ({"fail_503_rate": 2}, "fail_503_rate must be a number from 0 to 1, got 2"),
        ({"rpm": 3, "colour": "red"}, "unknown fault setting(s): colour"),
        ([1, 2], "Expected a JSON object."),
    ):
        response = httpx.post(endpoint, json=body)
        assert response.status_code == 400
        assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert words in response.json()["error"]["message"]
    assert httpx.get(endpoint).json() == changed  # a refused change applies nothing
    reset(faults_url)
    assert httpx.get(endpoint).json()["rpm"] is None


def test_stats_fields(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url)
    assert _generate(sdk).text
    counters = stats(faults_url)
    assert counters["faults"] == {"503": 0, "500": 0, "429": 0, "daily_quota": 0, "hang": 0}
    assert (counters["generate_calls"], counters["answered_ok"]) == (1, 1)
    assert (counters["quota_rejections"], counters["hangs_abandoned"]) == (0, 0)
    assert (counters["max_requests_in_window"], counters["max_tokens_in_window"]) == (1, 10)
    assert counters["window_by_model"] == {
        MODEL: {
            "max_requests_in_window": 1,
            "max_tokens_in_window": 10,
            "requests_in_window": 1,
            "tokens_in_window": 10,
        }
    }
    assert counters["uploads_started"] == 0  # the existing counters are still there
