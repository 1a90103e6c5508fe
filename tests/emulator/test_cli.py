"""Command-line flags of ``python -m emulator``."""

from __future__ import annotations

from emulator.__main__ import parse_args
from emulator.config import EmulatorConfig


def test_flags() -> None:
    args = parse_args(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--latency-ms",
            "25",
            "--api-key",
            "a",
            "--api-key",
            "b",
            "--inline-limit-bytes",
            "1000",
        ]
    )
    assert (args.host, args.port, args.latency_ms) == ("0.0.0.0", 0, 25.0)
    assert args.api_keys == ["a", "b"]
    assert args.inline_limit_bytes == 1000


def test_defaults_and_config_rules() -> None:
    args = parse_args([])
    assert (args.host, args.port, args.api_keys) == ("127.0.0.1", 8001, [])
    config = EmulatorConfig()
    assert config.inline_limit_bytes == 20 * 1024 * 1024
    assert config.accepts_key("anything")
    assert not EmulatorConfig(api_keys=("k",)).accepts_key("other")
    assert config.knows_model("gemini-3.1-pro-preview")
