"""Realistic outcomes as fault settings: blocks, empty answers, 429 shapes, 503 text,
service tiers, mask formats and web fileData URLs, seen through the real SDK."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from tests.emulator.conftest import API_KEY, make_client
from tests.emulator.helpers import ask, blank, parse_json_reply, parts, set_faults, stats
from visionq.emulator.masks import SEG_GRID, seg_tokens
from visionq.emulator.shapes import Shape, draw_scene, encode

PROMPT = "Write a caption."
SEGMENT = "Segment the red rectangle. Output a JSON list with box_2d, label and mask."
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
HELP = "type.googleapis.com/google.rpc.Help"


@pytest.fixture(scope="module")
def sdk(faults_url: str) -> Iterator[genai.Client]:
    client = make_client(faults_url)
    yield client
    client.close()


def _raw(url: str, model: str = "gemini-3.8-flash", **body: Any) -> httpx.Response:
    payload = {"contents": [{"parts": [{"text": PROMPT}]}], **body}
    return httpx.post(
        f"{url}/v1beta/models/{model}:generateContent",
        json=payload,
        headers={"x-goog-api-key": API_KEY},
        timeout=30,
    )


# --- blocked and empty answers ----------------------------------------------------------


@pytest.mark.parametrize("reason", ["SAFETY", "OTHER", "PROHIBITED_CONTENT"])
def test_blocked_prompt(faults_url: str, sdk: genai.Client, reason: str) -> None:
    set_faults(faults_url, prompt_block_reason=reason)
    reply = ask(sdk, blank(64, 64), PROMPT)
    assert reply.candidates is None
    assert reply.prompt_feedback is not None
    assert reply.prompt_feedback.block_reason == types.BlockedReason(reason)
    assert reply.usage_metadata is not None and reply.usage_metadata.prompt_token_count
    assert reply.text is None
    assert stats(faults_url)["outcomes"] == {reason: 1}


@pytest.mark.parametrize(
    "reason",
    ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "IMAGE_SAFETY", "MALFORMED_RESPONSE", "OTHER"],
)
def test_blocked_output(faults_url: str, sdk: genai.Client, reason: str) -> None:
    set_faults(faults_url, blocked_finish_reason=reason)
    reply = ask(sdk, blank(64, 64), PROMPT)
    assert reply.candidates is not None
    candidate = reply.candidates[0]
    assert candidate.finish_reason == types.FinishReason(reason)
    assert candidate.content is None
    assert reply.text is None


def test_empty_answers(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, empty_answer="no_candidates")
    reply = ask(sdk, blank(64, 64), PROMPT)
    assert reply.candidates is None and reply.prompt_feedback is None
    set_faults(faults_url, empty_answer="no_parts")
    reply = ask(sdk, blank(64, 64), PROMPT)
    assert reply.candidates is not None and reply.candidates[0].content is not None
    assert not reply.candidates[0].content.parts
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    set_faults(faults_url, empty_answer="empty_text")
    reply = ask(sdk, blank(64, 64), PROMPT)
    assert reply.text == ""


def test_outcome_every_lets_a_retry_succeed(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, blocked_finish_reason="OTHER", outcome_every=2)
    first, second, third = (ask(sdk, blank(64, 64), PROMPT) for _ in range(3))
    assert first.text and third.text
    assert second.candidates is not None
    assert second.candidates[0].finish_reason == types.FinishReason.OTHER


def test_forced_thoughts_exhaust_the_cap(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, thoughts_tokens=5000)
    config = types.GenerateContentConfig(max_output_tokens=1024)
    reply = ask(sdk, blank(64, 64), PROMPT, config=config)
    assert reply.candidates is not None
    assert reply.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert reply.usage_metadata is not None
    assert reply.usage_metadata.thoughts_token_count == 1024


def test_one_outcome_at_a_time(faults_url: str) -> None:
    response = httpx.post(
        f"{faults_url}/_emulator/faults",
        json={"prompt_block_reason": "SAFETY", "empty_answer": "no_parts"},
    )
    assert response.status_code == 400
    assert "set at most one of prompt_block_reason, empty_answer" in response.text


# --- 429 shapes and the 503 text ----------------------------------------------------------


def _client_error(sdk: genai.Client) -> errors.ClientError:
    with pytest.raises(errors.ClientError) as info:
        ask(sdk, blank(64, 64), PROMPT)
    return info.value


def _details(error: errors.APIError) -> dict[str, dict[str, Any]]:
    return {d["@type"]: d for d in error.details["error"].get("details", [])}


def test_mixed_daily_free_tier_429(faults_url: str, sdk: genai.Client) -> None:
    set_faults(
        faults_url,
        fail_429_rate=1.0,
        quota_shape="mixed_daily",
        quota_tier="free",
        retry_delay_s=1.0,
    )
    error = _client_error(sdk)
    details = _details(error)
    ids = [v["quotaId"] for v in details[QUOTA_FAILURE]["violations"]]
    assert ids == [
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "GenerateContentInputTokensPerModelPerMinute-FreeTier",
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
    ]
    assert details[RETRY_INFO]["retryDelay"] == "1s"
    assert "generate_content_free_tier_requests" in (error.message or "")


def test_paid_tier_ids_have_no_suffix(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, always_fail=429)
    ids = [v["quotaId"] for v in _details(_client_error(sdk))[QUOTA_FAILURE]["violations"]]
    assert ids == ["GenerateRequestsPerMinutePerProjectPerModel"]
    set_faults(faults_url, daily_quota_exhausted=True, quota_tier="free")
    ids = [v["quotaId"] for v in _details(_client_error(sdk))[QUOTA_FAILURE]["violations"]]
    assert ids == ["GenerateRequestsPerDayPerProjectPerModel-FreeTier"]


def test_help_only_429(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, fail_429_rate=1.0, quota_shape="help_only")
    error = _client_error(sdk)
    assert (error.code, error.status) == (429, "RESOURCE_EXHAUSTED")
    assert list(_details(error)) == [HELP]


def test_spend_limit_429(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, fail_429_rate=1.0, quota_shape="spend_limit", spend_tier=2)
    error = _client_error(sdk)
    assert (error.message or "").startswith(
        "Your project has exceeded its spend limit of $50.00 per 10 minutes for Tier 2."
    )
    violation = _details(error)[QUOTA_FAILURE]["violations"][0]
    assert violation["quotaId"] == "GenerateContentSpendPer10MinutesPerProjectTier2"


def test_503_text(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, fail_503_rate=1.0)
    with pytest.raises(errors.ServerError) as info:
        ask(sdk, blank(64, 64), PROMPT)
    assert info.value.message == (
        "This model is currently experiencing high demand. Spikes in demand are usually"
        " temporary. Please try again later."
    )


# --- service tiers ----------------------------------------------------------------------


def test_service_tier_header(faults_url: str) -> None:
    set_faults(faults_url)
    assert _raw(faults_url).headers["x-gemini-service-tier"] == "standard"
    for tier in ("flex", "priority", "standard"):
        assert _raw(faults_url, serviceTier=tier).headers["x-gemini-service-tier"] == tier
    set_faults(faults_url, priority_downgrade=True)
    response = _raw(faults_url, serviceTier="priority")
    assert (response.status_code, response.headers["x-gemini-service-tier"]) == (200, "standard")
    set_faults(faults_url, flex_shed_rate=1.0)
    shed = _raw(faults_url, serviceTier="flex")
    assert shed.status_code == 503
    assert _raw(faults_url, serviceTier="standard").status_code == 200
    assert stats(faults_url)["faults"]["flex_shed"] == 1


def test_service_tier_through_the_sdk(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url, priority_downgrade=True)
    config = types.GenerateContentConfig(service_tier=types.ServiceTier("priority"))
    reply = ask(sdk, blank(64, 64), PROMPT, config=config)
    assert reply.sdk_http_response is not None and reply.sdk_http_response.headers is not None
    assert reply.sdk_http_response.headers["x-gemini-service-tier"] == "standard"


# --- mask formats -------------------------------------------------------------------------

RED = Shape("rectangle", "red", (40, 30, 140, 90))


def _segment(faults_url: str, sdk: genai.Client, mask_format: str, model: str) -> dict[str, Any]:
    set_faults(faults_url, mask_format=mask_format) if mask_format else set_faults(faults_url)
    scene = encode(draw_scene(200, 120, [RED]))
    items = parse_json_reply(ask(sdk, scene, SEGMENT, model=model).text or "")
    assert len(items) == 1 and items[0]["label"] == "red rectangle"
    item: dict[str, Any] = items[0]
    return item


def test_png_masks_by_default(faults_url: str, sdk: genai.Client) -> None:
    item = _segment(faults_url, sdk, "", "gemini-3.8-flash")
    assert item["mask"].startswith("data:image/png;base64,")


def test_seg_token_masks(faults_url: str, sdk: genai.Client) -> None:
    item = _segment(faults_url, sdk, "", "gemini-3-flash-preview")  # the catalogue's choice
    mask = item["mask"]
    assert mask.startswith("<start_of_mask>") and mask.endswith("<end_of_mask>")
    runs = [int(n) for n in re.findall(r"<seg_(\d+)>", mask)]
    assert sum(runs) == SEG_GRID * SEG_GRID
    # A whole-box rectangle: nothing outside it, so one background run of 0 then all inside.
    assert runs == [0, SEG_GRID * SEG_GRID]


def test_seg_tokens_decode_to_the_shape() -> None:
    mask = Image.new("L", (64, 64))
    mask.paste(255, (0, 32, 64, 64))  # bottom half
    assert seg_tokens(mask) == "<start_of_mask><seg_2048><seg_2048><end_of_mask>"


def test_polygon_masks(faults_url: str, sdk: genai.Client) -> None:
    item = _segment(faults_url, sdk, "polygon", "gemini-3.8-flash")
    # [x, y] in 0-1000 of the image: the rectangle (40, 30)-(140, 90) in 200 x 120.
    assert sorted(map(tuple, item["mask"])) == [(200, 250), (200, 750), (700, 250), (700, 750)]
    assert item["box_2d"] == [250, 200, 750, 700]


def test_catalogue_polygon_model(faults_url: str, sdk: genai.Client) -> None:
    item = _segment(faults_url, sdk, "", "gemini-3.6-flash")
    assert isinstance(item["mask"], list) and len(item["mask"]) == 4


# --- web URLs in fileData -----------------------------------------------------------------


def test_public_url_on_the_emulator_is_fetched(faults_url: str, sdk: genai.Client) -> None:
    set_faults(faults_url)
    png = encode(draw_scene(200, 120, [RED]))
    stored = httpx.put(
        f"{faults_url}/_emulator/public/red.png",
        content=png,
        headers={"content-type": "image/png"},
    )
    uri = stored.json()["uri"]
    part = types.Part.from_uri(file_uri=uri, mime_type="image/png")
    reply = sdk.models.generate_content(
        model="gemini-3.8-flash", contents=parts(part, "Detect the red rectangle. box_2d")
    )
    assert parse_json_reply(reply.text or "")[0]["box_2d"] == [250, 200, 750, 700]
    assert stats(faults_url)["web_parts_used"] == 1


@pytest.mark.parametrize(
    "uri", ["https://example.com/cat.png", "https://storage.googleapis.com/b/o.png"]
)
def test_unreachable_url_is_400(sdk: genai.Client, uri: str) -> None:
    part = types.Part.from_uri(file_uri=uri, mime_type="image/png")
    with pytest.raises(errors.ClientError) as info:
        sdk.models.generate_content(model="gemini-3.8-flash", contents=parts(part, PROMPT))
    assert info.value.code == 400
    assert (info.value.message or "").startswith("Cannot fetch content from the provided URL.")


def test_allow_listed_host_is_fetched(emulator_url: str) -> None:
    from tests.emulator.helpers import serving
    from visionq.emulator.config import EmulatorConfig

    png = encode(draw_scene(64, 64, []))
    httpx.put(f"{emulator_url}/_emulator/public/x.png", content=png).raise_for_status()
    host = emulator_url.removeprefix("http://")
    config = EmulatorConfig(api_keys=(API_KEY,), fetch_allowed_hosts=(host,))
    with serving(config) as url:
        sdk = make_client(url)
        try:
            part = types.Part.from_uri(
                file_uri=f"{emulator_url}/_emulator/public/x.png", mime_type="image/png"
            )
            reply = sdk.models.generate_content(
                model="gemini-3.8-flash", contents=parts(part, "How big is it?")
            )
            assert "64x64 pixels" in (reply.text or "")
            missing = types.Part.from_uri(
                file_uri=f"{emulator_url}/_emulator/public/none.png", mime_type="image/png"
            )
            with pytest.raises(errors.ClientError):
                sdk.models.generate_content(
                    model="gemini-3.8-flash", contents=parts(missing, PROMPT)
                )
        finally:
            sdk.close()


def test_png_mask_still_decodes() -> None:
    from visionq.emulator.answers import mask_data_url

    mask = Image.new("L", (40, 20), 255)
    raw = base64.b64decode(mask_data_url(mask).removeprefix("data:image/png;base64,"))
    assert Image.open(io.BytesIO(raw)).size != (40, 20)


# --- the rolling spend limit ----------------------------------------------------------------


def test_spend_limit_refuses_once_the_window_has_cost_the_limit(
    faults_url: str, sdk: genai.Client
) -> None:
    set_faults(faults_url, spend_limit_usd=0.0001, spend_window_s=600)
    first = ask(sdk, blank(64, 64), PROMPT)  # nothing spent yet: answered
    usage = first.usage_metadata
    assert usage is not None
    # 3.5 Flash-Lite at $0.30 / $2.50 per 1M tokens (the emulator's own prices).
    output = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    expected = ((usage.prompt_token_count or 0) * 0.30 + output * 2.50) / 1_000_000
    counters = stats(faults_url)
    assert counters["spend_usd"] == pytest.approx(expected)
    assert expected > 0.0001
    error = _client_error(sdk)
    assert (error.message or "").startswith(
        "Your project has exceeded its spend limit of $0.0001 per 10 minutes for Tier 1."
    )
    delay = _details(error)[RETRY_INFO]["retryDelay"]
    assert 0 < float(delay.removesuffix("s")) <= 600
    assert stats(faults_url)["spend_rejections"] == 1


def test_flex_costs_half(faults_url: str) -> None:
    set_faults(faults_url)
    _raw(faults_url, model="gemini-3.6-flash", serviceTier="standard").raise_for_status()
    standard = stats(faults_url)["spend_usd"]
    set_faults(faults_url)
    _raw(faults_url, model="gemini-3.6-flash", serviceTier="flex").raise_for_status()
    assert stats(faults_url)["spend_usd"] == pytest.approx(standard / 2)
