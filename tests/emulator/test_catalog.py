"""The emulator's own model catalogue: ids, statuses, routing, aliases, billing, overrides."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.emulator.conftest import API_KEY, REPO_ROOT, make_client, running_emulator
from tests.emulator.helpers import ask, blank, image_part, image_tokens, parts, serving
from visionq.emulator import tokens
from visionq.emulator.catalog import CatalogueError
from visionq.emulator.catalog_load import build_catalogue, builtin_raw, load_models_file
from visionq.emulator.config import EmulatorConfig

PROMPT = "How big is it?"  # 14 characters -> 4 text tokens
TEXT_TOKENS = 4
NOT_FOUND = (
    "models/{m} is not found for API version v1beta, or is not supported for generateContent."
    " Call ListModels to see the list of available models and their supported methods."
)


def _client_error(call: Any) -> errors.ClientError:
    with pytest.raises(errors.ClientError) as info:
        call()
    return info.value


# --- statuses through the real SDK ------------------------------------------------------


@pytest.mark.parametrize(
    "model", ["gemini-xyz", "gemini-2.0-flash", "gemini-1.5-pro", "gemini-3-pro-preview"]
)
def test_unknown_and_shut_down_ids_are_404(client: genai.Client, model: str) -> None:
    error = _client_error(lambda: ask(client, blank(64, 64), PROMPT, model=model))
    assert (error.code, error.status) == (404, "NOT_FOUND")
    assert error.message == NOT_FOUND.format(m=model)


def test_closed_model_is_404_for_a_new_project(client: genai.Client) -> None:
    error = _client_error(lambda: ask(client, blank(64, 64), PROMPT, model="gemini-2.5-flash-lite"))
    assert (error.code, error.status) == (404, "NOT_FOUND")
    assert error.message == (
        "This model models/gemini-2.5-flash-lite is no longer available to new users. Please"
        " update your code to use a newer model for the latest features and improvements."
    )


@pytest.mark.parametrize(
    ("asked", "served"),
    [
        ("gemini-2.5-flash", "gemini-3.5-flash-lite"),
        ("gemini-2.5-pro", "gemini-3.8-flash"),
        ("gemini-3.5-flash", "gemini-3.6-flash"),
        ("gemini-3.7-flash", "gemini-3.8-flash"),
        ("gemini-flash-latest", "gemini-3.8-flash"),
        ("gemini-flash-lite-latest", "gemini-3.5-flash-lite"),
        ("gemini-3.8-flash", "gemini-3.8-flash"),
    ],
)
def test_routed_ids_and_aliases_answer_as_their_target(
    client: genai.Client, asked: str, served: str
) -> None:
    reply = ask(client, blank(1000, 800), PROMPT, model=asked)
    assert reply.model_version == served
    # The target's billing: 3.x bills 1120 for an image at the default (HIGH) level.
    assert image_tokens(reply.usage_metadata) == 1120


def test_routed_id_takes_the_successors_thinking_rules(client: genai.Client) -> None:
    # gemini-2.5-flash allowed budget 0; its successor only thinks (python-genai#2936).
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0))
    error = _client_error(
        lambda: ask(client, blank(64, 64), PROMPT, model="gemini-2.5-flash", config=config)
    )
    assert error.message == "Budget 0 is invalid. This model only works in thinking mode."


def test_existing_project_still_gets_closed_models() -> None:
    config = EmulatorConfig(api_keys=(API_KEY,), existing_project=True)
    with serving(config) as url:
        sdk = make_client(url)
        try:
            reply = ask(sdk, blank(1000, 800), PROMPT, model="gemini-2.5-flash-lite")
            assert reply.model_version == "gemini-2.5-flash-lite"
            assert image_tokens(reply.usage_metadata) == 2 * 2 * 258  # tiles_768
            # Thinking is off by default on 2.5 Flash-Lite.
            assert reply.usage_metadata is not None
            assert reply.usage_metadata.thoughts_token_count is None
        finally:
            sdk.close()


# --- models.get and models.list ---------------------------------------------------------


def test_models_get(client: genai.Client) -> None:
    model = client.models.get(model="gemini-3.8-flash")
    assert model.name == "models/gemini-3.8-flash"
    assert model.display_name == "Gemini 3.8 Flash"
    assert (model.input_token_limit, model.output_token_limit) == (1_048_576, 65_536)
    assert "generateContent" in (model.supported_actions or [])
    assert model.thinking is True
    error = _client_error(lambda: client.models.get(model="gemini-2.0-flash"))
    assert error.code == 404


def test_models_list_pages_and_omits_shut_down_models(emulator_url: str) -> None:
    names: list[str] = []
    token = ""
    headers = {"x-goog-api-key": API_KEY}
    for _ in range(20):
        params = {"pageSize": "4", **({"pageToken": token} if token else {})}
        page = httpx.get(f"{emulator_url}/v1/models", params=params, headers=headers).json()
        names += [m["name"] for m in page["models"]]
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert "models/gemini-3.5-flash-lite" in names
    assert "models/gemini-flash-latest" in names
    assert "models/gemini-2.5-flash" in names  # routed: still answers
    for gone in ("gemini-2.0-flash", "gemini-1.5-pro", "gemini-3-pro-preview"):
        assert f"models/{gone}" not in names
    assert "models/gemini-2.5-flash-lite" not in names  # closed to new projects
    assert len(names) == len(set(names))


def test_models_list_through_the_sdk(client: genai.Client) -> None:
    names = {m.name for m in client.models.list(config={"page_size": 3})}
    assert "models/gemini-3.6-flash" in names


# --- billing rules (unit) ---------------------------------------------------------------


def test_billing_rules_per_exact_id() -> None:
    table = build_catalogue().token_table()
    big = tokens.ImageInput(width=3840, height=2160)
    assert table.image_tokens("gemini-3.8-flash", big) == 1120
    low = tokens.ImageInput(width=64, height=64, media_resolution="MEDIA_RESOLUTION_LOW")
    assert table.image_tokens("gemini-3.6-flash", low) == 280
    # 2.5 Flash-Lite (closed) keeps its tile rule: 5 x 3 tiles; LOW is 64.
    assert table.image_tokens("gemini-2.5-flash-lite", big) == 5 * 3 * 258
    low_25 = tokens.ImageInput(width=3840, height=2160, media_resolution="MEDIA_RESOLUTION_LOW")
    assert table.image_tokens("gemini-2.5-flash-lite", low_25) == 64
    with pytest.raises(tokens.TokenRulesError, match="no billing rule"):
        table.image_tokens("gemini-3.8", big)  # exact ids only, never prefixes


def test_crop_unit_rule() -> None:
    rule = tokens.ModelRule(image_rule="crop_unit", tile_tokens=258, small_max_side=384)
    # unit = clamp(min/1.5, 256, 768): 960x540 -> 360 -> 3 x 2 tiles.
    assert rule.image_tokens(tokens.ImageInput(960, 540)) == 6 * 258
    assert rule.image_tokens(tokens.ImageInput(200, 100)) == 258


def test_builtin_catalogue_is_the_emulators_own_file() -> None:
    raw = builtin_raw()
    assert raw["version"] == "2026-12-04"
    assert raw["models"]["gemini-2.5-flash"] == {
        "status": "routed",
        "successor": "gemini-3.5-flash-lite",
        "shutdown_date": "2026-12-01",
    }


# --- override files ---------------------------------------------------------------------

FLAT_38 = {"models": {"gemini-3.8-flash": {"billing": {"image_rule": "flat", "tile_tokens": 300}}}}


def test_override_merges_per_model_and_key() -> None:
    catalogue = build_catalogue(FLAT_38)
    spec = catalogue.models["gemini-3.8-flash"]
    assert spec.billing is not None and spec.billing.image_rule == "flat"
    assert spec.thinking is not None and spec.thinking.default_level == "MEDIUM"  # kept
    assert (
        catalogue.models["gemini-3.6-flash"].billing
        == build_catalogue().models["gemini-3.6-flash"].billing
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ([], r"^models: \$: expected a JSON object"),
        ({"models": {"m": {"status": "gone"}}}, r"\$\.models\['m'\]\.status: expected one of"),
        (
            {"models": {"m": {"status": "stable"}}},
            r"\$\.models\['m'\]\.billing: expected a JSON object",
        ),
        (
            {"models": {"gemini-3.8-flash": {"billing": {"image_rule": "flat", "tile_tokens": 0}}}},
            r"billing\.tile_tokens: expected a positive integer, got 0",
        ),
        (
            {"models": {"gemini-2.5-flash": {"successor": "gemini-2.0-flash"}}},
            r"successor: 'gemini-2\.0-flash' is not a served model",
        ),
        ({"aliases": {"x-latest": "nope"}}, r"aliases\['x-latest'\]: 'nope' is not a served"),
        (
            {"models": {"gemini-3.8-flash": {"mask_format": "svg"}}},
            r"mask_format: expected one of png, seg_tokens, polygon",
        ),
        (
            {"models": {"gemini-3.8-flash": {"thinking": {"levels": ["TINY"]}}}},
            r"thinking\.levels: expected a list of",
        ),
        ({"text": {"chars_per_token": 0}}, r"\$\.text\.chars_per_token: expected a positive"),
    ],
)
def test_invalid_overrides_are_named(override: Any, message: str) -> None:
    with pytest.raises(CatalogueError, match=message):
        EmulatorConfig(model_catalogue=override)


@pytest.fixture(scope="module")
def models_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3.8 Flash billed flat 300 per image, text at 3 characters per token."""
    path = tmp_path_factory.mktemp("models") / "models.json"
    path.write_text(json.dumps({**FLAT_38, "text": {"chars_per_token": 3}}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def file_client(models_file: Path) -> Iterator[genai.Client]:
    """An emulator started with ``--models-file FILE``."""
    with running_emulator("--models-file", str(models_file)) as url:
        sdk = make_client(url)
        yield sdk
        sdk.close()


def test_models_file_changes_billing(file_client: genai.Client) -> None:
    big = blank(3840, 2160)
    text_tokens = -(-len(PROMPT) // 3)
    for model in ("gemini-3.8-flash", "gemini-flash-latest", "gemini-3.7-flash"):
        reply = ask(file_client, big, PROMPT, model=model)
        assert image_tokens(reply.usage_metadata) == 300
        assert reply.usage_metadata is not None
        assert reply.usage_metadata.prompt_token_count == 300 + text_tokens
    # Models the file does not name keep the built-in billing.
    kept = ask(file_client, big, PROMPT, model="gemini-3.6-flash")
    assert image_tokens(kept.usage_metadata) == 1120
    counted = file_client.models.count_tokens(
        model="gemini-3.8-flash", contents=parts(image_part(big), PROMPT)
    )
    assert counted.total_tokens == 300 + text_tokens


def test_flat_image_tokens_beats_every_rule() -> None:
    config = EmulatorConfig(api_keys=(API_KEY,), flat_image_tokens=258)
    with serving(config) as url:
        sdk = make_client(url)
        try:
            for model in ("gemini-3.8-flash", "gemini-2.5-flash"):
                usage = ask(sdk, blank(3840, 2160), PROMPT, model=model).usage_metadata
                assert image_tokens(usage) == 258
        finally:
            sdk.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"cannot read models file .*missing\.json: No such file"),
        ("{not json", r"models file .*bad\.json: invalid JSON at line 1 column 2"),
        ('{"models": {"gemini-3.8-flash": {"status": 3}}}', r"status: expected one of"),
    ],
)
def test_bad_models_file_stops_startup(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / ("missing.json" if content is None else "bad.json")
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(CatalogueError, match=message):
        load_models_file(path)
    done = subprocess.run(
        [sys.executable, "-m", "visionq.emulator", "--port", "0", "--models-file", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("python -m visionq.emulator: error: ")


def test_dated_prices() -> None:
    spec = build_catalogue().models["gemini-3.8-flash"]
    before, after = spec.price_on("2026-12-31"), spec.price_on("2027-01-01")
    assert before is not None and (before.input, before.output) == (0.75, 3.75)
    assert after is not None and (after.input, after.output) == (1.50, 7.50)
