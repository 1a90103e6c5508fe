"""The shared-format token rules table: defaults, overrides, flat billing, thoughts."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from google import genai
from google.genai import types

from emulator import tokens
from emulator.__main__ import build_config
from emulator.app import create_app
from emulator.config import EmulatorConfig
from emulator.server import bind_socket
from emulator.shapes import draw_scene, encode
from tests.emulator.conftest import API_KEY, REPO_ROOT, make_client, running_emulator
from tests.emulator.helpers import ask, image_part, parts

PROMPT = "How big is it?"  # 14 characters -> 4 text tokens
TEXT_TOKENS = 4
SHARED_FORMAT: dict[str, Any] = {
    "version": "2026-11-24",
    "text": {"chars_per_token": 4},
    "models": {
        "gemini-1.5": {"image_rule": "crop_unit", "tile_tokens": 258, "small_max_side": 384},
        "gemini-2.0": {
            "image_rule": "tiles_768",
            "tile_tokens": 258,
            "small_max_side": 384,
            "media_resolution": {"LOW": 64, "MEDIUM": 256},
        },
        "gemini-2.5": {
            "image_rule": "tiles_768",
            "tile_tokens": 258,
            "small_max_side": 384,
            "media_resolution": {"LOW": 64, "MEDIUM": 256},
        },
        "gemini-3": {
            "image_rule": "media_resolution",
            "media_resolution": {"LOW": 280, "MEDIUM": 560, "HIGH": 1120, "ULTRA_HIGH": 2240},
            "default_level": "HIGH",
        },
    },
}
FLAT_25 = {"models": {"gemini-2.5": {"image_rule": "flat", "tile_tokens": 258}}}


def _blank(width: int, height: int) -> bytes:
    return encode(draw_scene(width, height, []))


def _image_tokens(usage: types.GenerateContentResponseUsageMetadata | None) -> int | None:
    assert usage is not None
    details = {d.modality: d.token_count for d in usage.prompt_tokens_details or []}
    return details.get(types.MediaModality.IMAGE)


@contextmanager
def serving(config: EmulatorConfig) -> Iterator[str]:
    """``create_app(config)`` under uvicorn in a thread; yields its URL."""
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "emulator thread did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2.5 billed flat, plus a longer prefix for 2.5-pro, and 3 chars per token."""
    path = tmp_path_factory.mktemp("rules") / "token_rules.json"
    rules = {
        "version": "2099-01-01",
        "text": {"chars_per_token": 3},
        "models": {
            "gemini-2.5": {"image_rule": "flat", "tile_tokens": 258},
            "gemini-2.5-pro": {"image_rule": "crop_unit", "tile_tokens": 100, "small_max_side": 10},
        },
    }
    path.write_text(json.dumps(rules), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def rules_client(rules_file: Path) -> Iterator[genai.Client]:
    """An emulator started with ``--token-rules FILE``."""
    with running_emulator("--token-rules", str(rules_file)) as url:
        sdk = make_client(url)
        yield sdk
        sdk.close()


@pytest.fixture(scope="module")
def flat_client() -> Iterator[genai.Client]:
    """An emulator started with ``--flat-image-tokens 258``."""
    with running_emulator("--flat-image-tokens", "258") as url:
        sdk = make_client(url)
        yield sdk
        sdk.close()


# --- the built-in table --------------------------------------------------------------


def test_builtin_table_is_the_shared_format() -> None:
    assert tokens.DEFAULT_TOKEN_RULES == SHARED_FORMAT
    assert tokens.parse_token_rules(SHARED_FORMAT) == tokens.DEFAULT_TABLE
    assert tokens.DEFAULT_TABLE.version == "2026-11-24"
    assert tokens.DEFAULT_TABLE.chars_per_token == 4


@pytest.mark.parametrize(
    ("model", "size", "level", "expected"),
    [
        ("gemini-1.5-flash", (384, 384), None, 258),
        ("gemini-1.5-flash", (385, 384), None, 2 * 2 * 258),  # unit 256
        ("gemini-1.5-pro", (3000, 1200), None, 4 * 2 * 258),  # unit clamped to 768
        ("gemini-2.0-flash", (769, 768), None, 2 * 258),
        ("gemini-2.5-flash", (3840, 2160), None, 5 * 3 * 258),
        ("gemini-2.5-flash", (3840, 2160), "MEDIA_RESOLUTION_MEDIUM", 256),
        ("gemini-2.5-flash", (3840, 2160), "MEDIA_RESOLUTION_HIGH", 5 * 3 * 258),
        ("gemini-2.5-flash", (100, 100), "MEDIA_RESOLUTION_UNSPECIFIED", 258),
        ("gemini-3-flash-preview", (10, 10), "MEDIA_RESOLUTION_ULTRA_HIGH", 2240),
        ("gemini-3-flash-preview", (10, 10), "MEDIA_RESOLUTION_UNSPECIFIED", 1120),
        ("unknown-model", (1000, 800), None, 4 * 258),
    ],
)
def test_builtin_rules_exact(
    model: str, size: tuple[int, int], level: str | None, expected: int
) -> None:
    image = tokens.ImageInput(*size, media_resolution=level)
    assert tokens.DEFAULT_TABLE.image_tokens(model, image) == expected


def test_flat_rule_and_longest_prefix() -> None:
    table = tokens.build_token_table(
        {
            "models": {
                "gemini-2.5": {"image_rule": "flat", "tile_tokens": 300},
                "gemini-2.5-flash-lite": {
                    "image_rule": "tiles_768",
                    "tile_tokens": 10,
                    "small_max_side": 1,
                },
            }
        }
    )
    big = tokens.ImageInput(3840, 2160)
    assert table.image_tokens("gemini-2.5-flash", big) == 300
    assert table.image_tokens("gemini-2.5-flash-lite", big) == 5 * 3 * 10
    assert table.image_tokens("gemini-2.0-flash", big) == 5 * 3 * 258  # untouched entry
    assert table.version == "2026-11-24"  # inherited when the override has none


def test_flat_image_tokens_beats_every_rule() -> None:
    table = EmulatorConfig(flat_image_tokens=258).token_table()
    for model in ("gemini-1.5-pro", "gemini-2.5-flash", "gemini-3-pro-preview"):
        image = tokens.ImageInput(3840, 2160, media_resolution="MEDIA_RESOLUTION_LOW")
        assert table.image_tokens(model, image) == 258
        assert table.rule_name_for(model) == "flat"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([], r"^token_rules: \$: expected a JSON object"),
        ({}, r"^token_rules: \$\.models: required"),
        ({"models": []}, r"^token_rules: \$\.models: expected a JSON object"),
        ({"models": {"g": {"image_rule": "tiles"}}}, r"models\['g'\]\.image_rule: expected one"),
        (
            {"models": {"g": {"image_rule": "tiles_768", "tile_tokens": 258}}},
            r"models\['g'\]\.small_max_side: required for image_rule 'tiles_768'",
        ),
        (
            {"models": {"g": {"image_rule": "flat", "tile_tokens": 0}}},
            r"models\['g'\]\.tile_tokens: expected a positive integer, got 0",
        ),
        (
            {"models": {"g": {"image_rule": "flat", "tile_tokens": True}}},
            r"tile_tokens: expected a positive integer",
        ),
        (
            {"models": {"g": {"image_rule": "media_resolution", "media_resolution": {"LOW": 1}}}},
            r"models\['g'\]\.default_level: expected one of the levels",
        ),
        (
            {
                "models": {
                    "g": {
                        "image_rule": "media_resolution",
                        "media_resolution": {"HUGE": 1},
                        "default_level": "HUGE",
                    }
                }
            },
            r"media_resolution: unknown level 'HUGE'",
        ),
        ({"models": {}, "text": {"chars_per_token": 0}}, r"\$\.text\.chars_per_token: expected"),
        ({"models": {}, "version": 3}, r"^token_rules: \$\.version: expected a non-empty string"),
        ({"models": {"": {"image_rule": "flat", "tile_tokens": 1}}}, r"must not be empty"),
    ],
)
def test_invalid_rules_are_named(rules: Any, message: str) -> None:
    with pytest.raises(tokens.TokenRulesError, match=message):
        EmulatorConfig(token_rules=rules)


def test_invalid_flat_image_tokens() -> None:
    with pytest.raises(ValueError, match="flat_image_tokens must be > 0"):
        EmulatorConfig(flat_image_tokens=0)


# --- through the real SDK --------------------------------------------------------------


def test_config_override_flat_258_for_gemini25() -> None:
    config = EmulatorConfig(api_keys=(API_KEY,), token_rules=FLAT_25)
    with serving(config) as url:
        sdk = make_client(url)
        try:
            big = _blank(3840, 2160)
            usage = ask(sdk, big, PROMPT, model="gemini-2.5-flash").usage_metadata
            assert usage is not None
            assert usage.prompt_token_count == 258 + TEXT_TOKENS
            assert _image_tokens(usage) == 258
            # Other families keep their built-in rules.
            usage = ask(sdk, big, PROMPT, model="gemini-2.0-flash").usage_metadata
            assert _image_tokens(usage) == 5 * 3 * 258
            counted = sdk.models.count_tokens(
                model="gemini-2.5-flash", contents=parts(image_part(big), PROMPT)
            )
            assert counted.total_tokens == 258 + TEXT_TOKENS
        finally:
            sdk.close()


def test_token_rules_file(rules_client: genai.Client) -> None:
    big = _blank(3840, 2160)
    text_tokens = math.ceil(len(PROMPT) / 3)  # the file sets 3 chars per token
    reply = ask(rules_client, big, PROMPT, model="gemini-2.5-flash")
    usage = reply.usage_metadata
    assert usage is not None
    assert _image_tokens(usage) == 258
    assert usage.prompt_token_count == 258 + text_tokens
    assert usage.candidates_token_count == math.ceil(len(reply.text or "") / 3)
    # The longer prefix wins for 2.5-pro: crop unit 2160 / 1.5 -> 768, 5 x 3 tiles of 100.
    usage = ask(rules_client, big, PROMPT, model="gemini-2.5-pro").usage_metadata
    assert _image_tokens(usage) == 5 * 3 * 100
    # Prefixes the file does not name keep the built-in entries.
    usage = ask(rules_client, big, PROMPT, model="gemini-3-flash-preview").usage_metadata
    assert _image_tokens(usage) == 1120
    counted = rules_client.models.count_tokens(
        model="gemini-2.5-pro", contents=parts(image_part(big), PROMPT)
    )
    assert counted.total_tokens == 5 * 3 * 100 + text_tokens


def test_flat_image_tokens_flag(flat_client: genai.Client) -> None:
    big = _blank(3840, 2160)
    for model in ("gemini-1.5-pro", "gemini-2.5-flash", "gemini-3-pro-preview"):
        usage = ask(flat_client, big, PROMPT, model=model).usage_metadata
        assert usage is not None
        assert _image_tokens(usage) == 258
        assert usage.prompt_token_count == 258 + TEXT_TOKENS


def test_gemini25_media_resolution_through_sdk(client: genai.Client) -> None:
    big = _blank(1000, 800)
    for level, expected in (
        (types.MediaResolution.MEDIA_RESOLUTION_LOW, 64),
        (types.MediaResolution.MEDIA_RESOLUTION_MEDIUM, 256),
        (types.MediaResolution.MEDIA_RESOLUTION_HIGH, 4 * 258),
    ):
        config = types.GenerateContentConfig(media_resolution=level)
        usage = ask(client, big, PROMPT, model="gemini-2.5-flash", config=config).usage_metadata
        assert _image_tokens(usage) == expected


def test_gemini3_per_part_resolution_through_sdk(client: genai.Client) -> None:
    small = _blank(64, 64)
    ultra = types.Part(
        inline_data=types.Blob(data=small, mime_type="image/png"),
        media_resolution=types.PartMediaResolution(
            level=types.PartMediaResolutionLevel.MEDIA_RESOLUTION_ULTRA_HIGH
        ),
    )
    low = types.Part(
        inline_data=types.Blob(data=small, mime_type="image/png"),
        media_resolution=types.PartMediaResolution(
            level=types.PartMediaResolutionLevel.MEDIA_RESOLUTION_LOW
        ),
    )
    contents = parts(ultra, low, image_part(small), PROMPT)
    usage = client.models.generate_content(
        model="gemini-3-flash-preview", contents=contents
    ).usage_metadata
    assert _image_tokens(usage) == 2240 + 280 + 1120
    counted = client.models.count_tokens(model="gemini-3-flash-preview", contents=contents)
    assert counted.total_tokens == 2240 + 280 + 1120 + TEXT_TOKENS


@pytest.mark.parametrize(("budget", "thoughts"), [(1024, 64), (10, 10), (0, None), (-1, None)])
def test_thoughts_tokens(client: genai.Client, budget: int, thoughts: int | None) -> None:
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_budget=budget)
    )
    reply = ask(client, _blank(300, 300), PROMPT, config=config)
    usage = reply.usage_metadata
    assert usage is not None
    assert usage.thoughts_token_count == thoughts
    assert usage.prompt_token_count == 258 + TEXT_TOKENS
    assert usage.candidates_token_count == math.ceil(len(reply.text or "") / 4)
    assert usage.total_token_count == (
        usage.prompt_token_count + usage.candidates_token_count + (thoughts or 0)
    )


def test_usage_metadata_shape() -> None:
    prompt = tokens.PromptTokens(text=4, image=258)
    usage = tokens.usage_metadata(prompt, "12345", thoughts=64)
    assert list(usage) == [
        "promptTokenCount",
        "candidatesTokenCount",
        "thoughtsTokenCount",
        "totalTokenCount",
        "promptTokensDetails",
        "candidatesTokensDetails",
    ]
    assert usage["totalTokenCount"] == 262 + 2 + 64
    assert usage["promptTokensDetails"] == [
        {"modality": "TEXT", "tokenCount": 4},
        {"modality": "IMAGE", "tokenCount": 258},
    ]
    assert "thoughtsTokenCount" not in tokens.usage_metadata(prompt, "x")


# --- the command line ----------------------------------------------------------------


def test_flags_build_config(rules_file: Path) -> None:
    config, _ = build_config(["--token-rules", str(rules_file), "--flat-image-tokens", "99"])
    assert config.token_rules is not None
    assert config.token_rules["version"] == "2099-01-01"
    assert config.flat_image_tokens == 99
    table = config.token_table()
    assert (table.version, table.chars_per_token) == ("2099-01-01", 3)
    default, _ = build_config([])
    assert (default.token_rules, default.flat_image_tokens) == (None, None)


def _start(*flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "emulator", "--port", "0", *flags],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"cannot read token rules file .*missing\.json: No such file"),
        ("{not json", r"token rules file .*bad\.json: invalid JSON at line 1 column 2"),
        (
            json.dumps({"models": {"gemini-2.5": {"image_rule": "tiles_768", "tile_tokens": 1}}}),
            r"token rules file .*bad\.json: \$\.models\['gemini-2\.5'\]\.small_max_side: required",
        ),
        (
            json.dumps({"models": {"gemini-2.5": {"image_rule": "flat_258"}}}),
            r"models\['gemini-2\.5'\]\.image_rule: expected one of tiles_768, crop_unit, flat",
        ),
    ],
)
def test_bad_rules_file_stops_startup(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / ("missing.json" if content is None else "bad.json")
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = _start("--token-rules", str(path))
    assert result.returncode == 2
    assert result.stdout == ""  # never announced a listening address
    assert "python -m emulator: error: " in result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr


def test_bad_flat_image_tokens_stops_startup() -> None:
    result = _start("--flat-image-tokens", "0")
    assert result.returncode == 2
    assert "flat_image_tokens must be > 0" in result.stderr
