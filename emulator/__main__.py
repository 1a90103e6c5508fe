"""``python -m emulator``: run the Gemini API emulator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from emulator.config import (
    DEFAULT_FILE_MAX_BYTES,
    DEFAULT_FILE_PROCESSING_S,
    DEFAULT_FILE_TTL_S,
    DEFAULT_INLINE_LIMIT_BYTES,
    EmulatorConfig,
)
from emulator.server import run
from emulator.tokens import load_token_rules_file


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        dest="api_keys",
        help="accepted key (repeatable); none given = any non-empty key",
    )
    parser.add_argument("--inline-limit-bytes", type=int, default=DEFAULT_INLINE_LIMIT_BYTES)
    parser.add_argument(
        "--file-processing-s",
        type=float,
        default=DEFAULT_FILE_PROCESSING_S,
        help="seconds an uploaded file stays PROCESSING (0 = ACTIVE at once)",
    )
    parser.add_argument(
        "--file-ttl-s",
        type=float,
        default=DEFAULT_FILE_TTL_S,
        help="seconds until an uploaded file expires (default 48 h)",
    )
    parser.add_argument(
        "--file-max-bytes",
        type=int,
        default=DEFAULT_FILE_MAX_BYTES,
        help="largest file the File API accepts (default 2 GiB)",
    )
    parser.add_argument(
        "--invalid-json-every",
        type=int,
        default=0,
        help="every Nth structured answer violates its schema (0 = never)",
    )
    parser.add_argument(
        "--token-rules",
        metavar="FILE",
        default=None,
        help="JSON token rules table (shared format); its models entries replace/add "
        "prefixes of the built-in table",
    )
    parser.add_argument(
        "--flat-image-tokens",
        metavar="N",
        type=int,
        default=None,
        help="bill every image a flat N tokens for all models (calibration tests)",
    )
    return parser.parse_args(argv)


def build_config(argv: Sequence[str] | None = None) -> tuple[EmulatorConfig, argparse.Namespace]:
    """Flags -> a validated config; a bad rules file or setting exits 2 with a message."""
    args = parse_args(argv)
    try:
        rules = load_token_rules_file(args.token_rules) if args.token_rules is not None else None
        config = EmulatorConfig(
            api_keys=tuple(args.api_keys),
            latency_ms=args.latency_ms,
            inline_limit_bytes=args.inline_limit_bytes,
            file_processing_s=args.file_processing_s,
            file_ttl_s=args.file_ttl_s,
            file_max_bytes=args.file_max_bytes,
            invalid_json_every=args.invalid_json_every,
            token_rules=rules,
            flat_image_tokens=args.flat_image_tokens,
        )
    except ValueError as exc:
        print(f"python -m emulator: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    return config, args


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags and serve."""
    config, args = build_config(argv)
    run(config, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
