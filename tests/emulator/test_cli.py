"""Command-line flags of ``python -m visionq.emulator``."""

from __future__ import annotations

import pytest

from visionq.emulator.__main__ import parse_args
from visionq.emulator.config import EmulatorConfig


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
            "--file-processing-s",
            "2.5",
            "--file-ttl-s",
            "60",
            "--file-max-bytes",
            "5000",
            "--invalid-json-every",
            "4",
        ]
    )
    assert (args.host, args.port, args.latency_ms) == ("0.0.0.0", 0, 25.0)
    assert args.api_keys == ["a", "b"]
    assert args.inline_limit_bytes == 1000
    assert (args.file_processing_s, args.file_ttl_s) == (2.5, 60.0)
    assert (args.file_max_bytes, args.invalid_json_every) == (5000, 4)


def test_defaults_and_config_rules() -> None:
    args = parse_args([])
    assert (args.host, args.port, args.api_keys) == ("127.0.0.1", 8001, [])
    config = EmulatorConfig()
    assert config.inline_limit_bytes == 100 * 1024 * 1024
    assert config.accepts_key("anything")
    assert not EmulatorConfig(api_keys=("k",)).accepts_key("other")
    assert config.catalogue().models["gemini-3.1-pro-preview"].status == "preview"
    assert (config.file_processing_s, config.file_ttl_s) == (0.5, 48 * 3600)
    assert (config.file_max_bytes, config.invalid_json_every) == (2 * 1024**3, 0)
    assert (args.file_processing_s, args.file_ttl_s, args.invalid_json_every) == (0.5, 172800, 0)
    for bad in (
        {"file_processing_s": -1},
        {"file_ttl_s": 0},
        {"file_max_bytes": 0},
        {"invalid_json_every": -1},
    ):
        with pytest.raises(ValueError, match="must be"):
            EmulatorConfig(**bad)  # type: ignore[arg-type]


def _visionq_emulator_params(argv: list[str]) -> dict[str, object]:
    import typer.main

    from visionq.cli.main import app

    group = typer.main.get_command(app)
    command = group.get_command(group.make_context("visionq", ["emulator"]), "emulator")  # type: ignore[attr-defined]
    assert command is not None
    return dict(command.make_context("emulator", list(argv)).params)


def test_both_command_lines_take_the_same_options_with_the_same_defaults() -> None:
    import dataclasses

    from visionq.emulator.options import OPTIONS

    assert _visionq_emulator_params([]) == vars(parse_args([]))
    # Every option not about listening or the catalogue file is a config field, and back.
    config_fields = {field.name for field in dataclasses.fields(EmulatorConfig)}
    dests = {option.dest for option in OPTIONS}
    assert config_fields - {"model_catalogue"} == dests - {"host", "port", "models_file"}
    argv = ["--existing-project", "--api-key", "a", "--api-key", "b", "--spend-tier", "2"]
    argv += ["--quota-shape", "help_only", "--fail-503-rate", "0.25", "--rpm", "7"]
    argv += ["--fetch-allow-host", "h:1", "--inline-limit-bytes", "9", "--hang-s", "3"]
    assert _visionq_emulator_params(argv) == vars(parse_args(argv))


def test_the_readme_table_names_every_flag() -> None:
    from pathlib import Path

    from visionq.emulator.options import OPTIONS

    readme = (Path(__file__).parents[2] / "emulator" / "README.md").read_text(encoding="utf-8")
    missing = [o.name for o in OPTIONS if o.dest not in ("host", "port") and o.name not in readme]
    assert missing == []
